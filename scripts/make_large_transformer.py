#!/usr/bin/env python3
"""Generate a larger token-input transformer (tens of MB of float32 weights) with ONNX external
data, for weight-only (4-bit block-wise) quantization benchmarks and memory/size checks.

The graph has the structure of sample_models/tokens/ (see sample_models/README.md):
  input int64 [batch, seq] token ids
  -> embed_gather Gather(embed.weight [vocab, D]) -> pos_embed_add Add(pos_embed [seq, D])
  -> N pre-LN encoder blocks: LayerNormalization, multi-head self-attention (Q/K/V/out MatMul
     [D, D] + Add bias, Softmax), LayerNormalization, FFN MatMul [D, F] -> GELU (Erf) -> MatMul [F, D]
  -> token_mean ReduceMean -> ln_f LayerNormalization -> head MatMul [D, classes] + Add -> logits
Opset 17, IR 8, node names like the samples' (layer1_attn_q_proj, layer1.attn_q.weight, ...).

The weights are not trained, but drawn like a trained model's: normal with std 1/sqrt(fan_in)
(so activations keep their scale through the blocks), LayerNorm scales near 1, small biases.
Some weights get a few outlier *input* channels (rows of the [K, N] MatMul weight scaled by 4..12),
as trained transformers have: a block of 32 along K that contains an outlier row gets a scale several
times larger than its neighbours', so block size, symmetric vs asymmetric and clipping / error-aware
methods (HQQ, GPTQ) give visibly different results. Which weights have them is printed.

Writes OUT_DIR/model.onnx + OUT_DIR/model.onnx.data (every initializer above 1 KB is external),
OUT_DIR/calib.npz (64 samples) and OUT_DIR/eval.npz (128 samples), int64 token ids under the key
"input" (no labels), drawn from a Zipf-like distribution over the vocabulary. Everything is seeded:
reruns give byte-identical files (the .npz files are re-zipped with fixed timestamps).

Usage (numpy + onnx + onnxruntime, e.g. the oracle venv ~/.cache/quantbench/venv):
  python scripts/make_large_transformer.py OUT_DIR [--layers 4] [--dim 512] [--heads 8]
         [--ffn 4*dim] [--vocab 4096] [--seq 64] [--classes 10] [--seed 0]
Defaults: 4 layers, D 512, FFN 2048, vocab 4096, sequence 64: 14.8 M parameters, 59 MB float32.
"""
import argparse
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sample_models"))
from token_transformer import constants, encoder_nodes, parameter_names, save_npz  # noqa: E402

PRODUCER = "quantbench scripts/make_large_transformer.py"


def make_weights(a, rng):
    """All parameters, drawn in a fixed order. Returns (dict name -> float32 array, outlier notes)."""
    D, F, V, T, L, C = a.dim, a.ffn, a.vocab, a.seq, a.layers, a.classes

    def normal(shape, std):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)

    def linear(k, n):  # MatMul weight [in, out], std 1/sqrt(fan_in)
        return normal((k, n), 1.0 / np.sqrt(k))

    def with_outlier_rows(w, count):
        """Scale `count` random input channels (rows) by 4..12: outlier input channels."""
        rows = np.sort(rng.choice(w.shape[0], count, replace=False))
        factors = rng.uniform(4.0, 12.0, count).astype(np.float32)
        w[rows] *= factors[:, None]
        return w, rows

    p, notes = {}, []
    p["embed.weight"] = normal((V, D), 0.5)
    p["pos_embed"] = normal((T, D), 0.1)
    for layer in range(1, L + 1):
        t = f"layer{layer}."
        for ln in ("ln1", "ln2"):
            p[t + ln + ".scale"] = (1.0 + normal((D,), 0.1)).astype(np.float32)
            p[t + ln + ".bias"] = normal((D,), 0.02)
        shapes = {"attn_q": (D, D), "attn_k": (D, D), "attn_v": (D, D), "attn_out": (D, D),
                  "mlp_fc1": (D, F), "mlp_fc2": (F, D)}
        # Outlier input channels: Q/K/V (they share their input, so the same kind of channel
        # would stand out in all three; here each draws its own) in odd layers, the FFN in even
        # layers, attn_out in every layer: about half of the projection weights.
        outliers = {"attn_q", "attn_k", "attn_v"} if layer % 2 else {"mlp_fc1", "mlp_fc2"}
        outliers.add("attn_out")
        for nm, (k, n) in shapes.items():
            w = linear(k, n)
            if nm in outliers:
                w, rows = with_outlier_rows(w, 4)
                notes.append(f"{t}{nm}.weight rows {rows.tolist()}")
            p[t + nm + ".weight"] = w
            p[t + nm + ".bias"] = normal((n,), 0.02)
    p["ln_f.scale"] = (1.0 + normal((D,), 0.1)).astype(np.float32)
    p["ln_f.bias"] = normal((D,), 0.02)
    p["head.weight"] = linear(D, C)
    p["head.bias"] = normal((C,), 0.02)
    return p, notes


def build_model(a, p):
    D, H, T, L = a.dim, a.heads, a.seq, a.layers
    dh = D // H
    names = parameter_names(L)
    assert sorted(names) == sorted(p), "every parameter is written once"
    inits = [numpy_helper.from_array(p[k], k) for k in names]
    inits += [numpy_helper.from_array(v, k) for k, v in constants(H, dh)]
    nodes = encoder_nodes(L)
    graph = helper.make_graph(
        nodes, "large_transformer",
        [helper.make_tensor_value_info("input", TensorProto.INT64, ["batch", T])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", a.classes])], inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
        producer_name=PRODUCER, producer_version="1", model_version=1,
        doc_string=(f"QuantBench synthetic token transformer: {L} layers, D {D}, {H} heads, FFN {a.ffn}, "
                    f"vocab {a.vocab}, sequence {T}, seed {a.seed}; untrained weights drawn like a "
                    "trained model's, with outlier input channels"))
    names = [nd.name for nd in nodes]
    assert all(names) and len(set(names)) == len(names), "node names must be unique"
    return model


def tokens(rng, n, vocab, seq):
    """Zipf-like token ids (probability ~ 1/(rank+2)^1.1, ranks shuffled over the vocabulary)."""
    prob = 1.0 / (np.arange(vocab) + 2.0) ** 1.1
    prob /= prob.sum()
    ids = rng.permutation(vocab)
    return ids[rng.choice(vocab, size=(n, seq), p=prob)].astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--ffn", type=int, default=None, help="FFN width (default 4*dim)")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-calib", type=int, default=64)
    ap.add_argument("--n-eval", type=int, default=128)
    a = ap.parse_args()
    a.ffn = a.ffn or 4 * a.dim
    assert a.dim % a.heads == 0, "--dim must be a multiple of --heads"
    t0 = time.perf_counter()
    os.makedirs(a.out_dir, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    p, notes = make_weights(a, rng)
    model = build_model(a, p)
    n_params = sum(v.size for v in p.values())

    path = os.path.join(a.out_dir, "model.onnx")
    data_name = "model.onnx.data"
    data_path = os.path.join(a.out_dir, data_name)
    for f in (path, data_path):  # onnx appends to an existing external data file: start clean
        if os.path.exists(f):
            os.remove(f)
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data_name, size_threshold=1024, convert_attribute=False)
    onnx.checker.check_model(path, full_check=True)  # path-based: reads the external data

    data_rng = np.random.default_rng(a.seed + 1)
    calib = tokens(data_rng, a.n_calib, a.vocab, a.seq)
    ev = tokens(data_rng, a.n_eval, a.vocab, a.seq)
    save_npz(os.path.join(a.out_dir, "calib.npz"), input=calib)
    save_npz(os.path.join(a.out_dir, "eval.npz"), input=ev)
    t_written = time.perf_counter() - t0

    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    t1 = time.perf_counter()
    logits = sess.run(["logits"], {"input": ev[:8]})[0]
    t_run = time.perf_counter() - t1
    assert logits.shape == (8, a.classes) and np.all(np.isfinite(logits)), "ONNX Runtime output is wrong"

    sizes = {f: os.path.getsize(os.path.join(a.out_dir, f))
             for f in ("model.onnx", data_name, "calib.npz", "eval.npz")}
    print(f"{a.layers} layers, D {a.dim}, {a.heads} heads, FFN {a.ffn}, vocab {a.vocab}, sequence {a.seq}, "
          f"{a.classes} classes: {n_params:,} parameters ({n_params * 4 / 1e6:.1f} MB float32)")
    print("outlier input channels in: " + "; ".join(notes))
    for f, b in sizes.items():
        print(f"  {f:16s} {b:>12,d} bytes ({b / 2**20:.2f} MiB)")
    print(f"ONNX Runtime ok: 8 samples in {t_run * 1000:.0f} ms (1 thread), logits std {logits.std():.3f}, "
          f"top-1 classes {np.bincount(logits.argmax(1), minlength=a.classes).tolist()}")
    print(f"written and checked in {t_written:.1f} s, total {time.perf_counter() - t0:.1f} s -> {a.out_dir}")


if __name__ == "__main__":
    main()
