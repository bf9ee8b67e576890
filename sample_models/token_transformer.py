"""The token transformer's graph, shared by make_samples.py (the `tokens` sample) and
scripts/make_large_transformer.py (the large generated model): an embedding Gather plus positional
embedding, pre-LN encoder blocks (multi-head attention with MatMul projections, Erf GELU MLP),
mean pooling, a final LayerNormalization and a MatMul head. Initializer names are fixed
(`embed.weight`, `pos_embed`, `layer{i}.attn_q.weight`, ...; the callers provide them), so the
nodes depend only on the number of blocks. Also the byte-reproducible `.npz` writer both use,
the parameter names, and the fixed constants (which the `transformer` sample shares too).
Needs numpy and onnx only.
"""
import io
import zipfile

import numpy as np
from onnx import helper


def parameter_names(layers):
    """The learned initializers the nodes read, in the order they are written."""
    names = ["embed.weight", "pos_embed"]
    for layer in range(1, layers + 1):
        pre = f"layer{layer}."
        names += [pre + t for t in (
            "ln1.scale", "ln1.bias", "attn_q.weight", "attn_q.bias", "attn_k.weight", "attn_k.bias",
            "attn_v.weight", "attn_v.bias", "attn_out.weight", "attn_out.bias", "ln2.scale", "ln2.bias",
            "mlp_fc1.weight", "mlp_fc1.bias", "mlp_fc2.weight", "mlp_fc2.bias")]
    return names + ["ln_f.scale", "ln_f.bias", "head.weight", "head.bias"]


def constants(heads, head_dim):
    """The fixed initializers the nodes read (head split/merge shapes, attention scale, GELU
    constants), as (name, array) pairs."""
    return [
        ("attn.split_heads_shape", np.array([0, 0, heads, head_dim], np.int64)),
        ("attn.merge_heads_shape", np.array([0, 0, heads * head_dim], np.int64)),
        ("attn.scale", np.array(np.sqrt(head_dim), np.float32)),
        ("gelu.sqrt2", np.array(np.sqrt(2.0), np.float32)),
        ("gelu.one", np.array(1.0, np.float32)),
        ("gelu.half", np.array(0.5, np.float32)),
    ]


def encoder_nodes(layers):
    """The graph's nodes, input `input` (token ids) to output `logits`, for `layers` blocks."""
    mk = helper.make_node
    nodes = [
        mk("Gather", ["embed.weight", "input"], ["embed_out"], name="embed_gather", axis=0),
        mk("Add", ["embed_out", "pos_embed"], ["x0"], name="pos_embed_add"),
    ]
    x = "x0"
    for layer in range(1, layers + 1):
        n, t = f"layer{layer}_", f"layer{layer}."  # node / tensor-name prefix, initializer prefix
        nodes.append(mk("LayerNormalization", [x, t + "ln1.scale", t + "ln1.bias"], [n + "ln1_out"],
                        name=n + "ln1", axis=-1, epsilon=1e-5))
        for nm in ("q", "k", "v"):
            nodes += [
                mk("MatMul", [n + "ln1_out", t + f"attn_{nm}.weight"], [n + f"{nm}_matmul_out"],
                   name=n + f"attn_{nm}_proj"),
                mk("Add", [n + f"{nm}_matmul_out", t + f"attn_{nm}.bias"], [n + f"{nm}_out"],
                   name=n + f"attn_{nm}_bias"),
                mk("Reshape", [n + f"{nm}_out", "attn.split_heads_shape"], [n + f"{nm}_split"],
                   name=n + f"attn_{nm}_split"),
                mk("Transpose", [n + f"{nm}_split"], [n + f"{nm}_heads"], name=n + f"attn_{nm}_transpose",
                   perm=[0, 2, 3, 1] if nm == "k" else [0, 2, 1, 3]),
            ]
        nodes += [
            mk("MatMul", [n + "q_heads", n + "k_heads"], [n + "attn_scores_raw"], name=n + "attn_scores_matmul"),
            mk("Div", [n + "attn_scores_raw", "attn.scale"], [n + "attn_scores"], name=n + "attn_scale"),
            mk("Softmax", [n + "attn_scores"], [n + "attn_probs"], name=n + "attn_softmax", axis=-1),
            mk("MatMul", [n + "attn_probs", n + "v_heads"], [n + "attn_ctx_heads"], name=n + "attn_context_matmul"),
            mk("Transpose", [n + "attn_ctx_heads"], [n + "attn_ctx_t"], name=n + "attn_ctx_transpose",
               perm=[0, 2, 1, 3]),
            mk("Reshape", [n + "attn_ctx_t", "attn.merge_heads_shape"], [n + "attn_ctx"], name=n + "attn_merge_heads"),
            mk("MatMul", [n + "attn_ctx", t + "attn_out.weight"], [n + "attn_proj_matmul_out"],
               name=n + "attn_out_proj"),
            mk("Add", [n + "attn_proj_matmul_out", t + "attn_out.bias"], [n + "attn_proj_out"],
               name=n + "attn_out_bias"),
            mk("Add", [x, n + "attn_proj_out"], [n + "attn_residual_out"], name=n + "attn_residual"),
            mk("LayerNormalization", [n + "attn_residual_out", t + "ln2.scale", t + "ln2.bias"], [n + "ln2_out"],
               name=n + "ln2", axis=-1, epsilon=1e-5),
            mk("MatMul", [n + "ln2_out", t + "mlp_fc1.weight"], [n + "mlp_fc1_matmul_out"], name=n + "mlp_fc1_matmul"),
            mk("Add", [n + "mlp_fc1_matmul_out", t + "mlp_fc1.bias"], [n + "mlp_fc1_out"], name=n + "mlp_fc1_bias"),
            mk("Div", [n + "mlp_fc1_out", "gelu.sqrt2"], [n + "gelu_div_out"], name=n + "gelu_div"),
            mk("Erf", [n + "gelu_div_out"], [n + "gelu_erf_out"], name=n + "gelu_erf"),
            mk("Add", [n + "gelu_erf_out", "gelu.one"], [n + "gelu_add_out"], name=n + "gelu_add"),
            mk("Mul", [n + "mlp_fc1_out", n + "gelu_add_out"], [n + "gelu_mul_out"], name=n + "gelu_mul"),
            mk("Mul", [n + "gelu_mul_out", "gelu.half"], [n + "gelu_out"], name=n + "gelu_half"),
            mk("MatMul", [n + "gelu_out", t + "mlp_fc2.weight"], [n + "mlp_fc2_matmul_out"], name=n + "mlp_fc2_matmul"),
            mk("Add", [n + "mlp_fc2_matmul_out", t + "mlp_fc2.bias"], [n + "mlp_out"], name=n + "mlp_fc2_bias"),
            mk("Add", [n + "attn_residual_out", n + "mlp_out"], [n + "out"], name=n + "mlp_residual"),
        ]
        x = n + "out"
    nodes += [
        mk("ReduceMean", [x], ["pooled"], name="token_mean", axes=[1], keepdims=0),
        mk("LayerNormalization", ["pooled", "ln_f.scale", "ln_f.bias"], ["pooled_norm"], name="ln_f",
           axis=-1, epsilon=1e-5),
        mk("MatMul", ["pooled_norm", "head.weight"], ["head_matmul_out"], name="head_matmul"),
        mk("Add", ["head_matmul_out", "head.bias"], ["logits"], name="head_bias"),
    ]
    return nodes


def save_npz(path, **arrays):
    """np.savez_compressed, then re-zipped with fixed timestamps so reruns are byte-identical."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    buf.seek(0)
    with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zout.writestr(zi, zin.read(info.filename))
