"""The deployment part of the benchmark (issue 16): ONNX Runtime CPU latency, batch 1, at 1 and 2
threads, of each model as float, as ORT `quantize_static`'s QDQ export and as QuantBench's export
for each placement target (`--target ort|tensorrt|npu`), all from the same calibration samples, with
each export's output SQNR against the float model (and top-1 accuracy where the set is labelled),
run in ONNX Runtime. Samples and the real-world corpus models QuantBench quantizes.

Usage: bench_latency.py QUANTBENCH_BIN [CALIB_SAMPLES]   (prints the Markdown section; bench.py
embeds it). Bars: our `ort` export ≤ 1.05× the latency of ORT's own, SQNR ≥ ORT's − 0.5 dB.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

import bench_corpus
from ort_latency import latencies
from ort_quantize_timed import ort_quantize

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SAMPLES = ["mlp", "cnn", "mobilenet", "transformer"]
TARGETS = ["ort", "tensorrt", "npu"]


def accuracy(path, data):
    arrays = np.load(data)
    if "labels" not in arrays.files:
        return None
    out = bench_corpus.outputs(path, data)[0]
    return float(np.mean(out.reshape(len(out), -1).argmax(1) == arrays["labels"]))


def subset(src, dst, n):
    """The first `n` samples of an .npz set."""
    arrays = np.load(src)
    np.savez(dst, **{k: arrays[k][:n] for k in arrays.files})
    return dst


def one_model(qb, name, model, calib, evalset, tmp):
    """(row, failure line): latencies, SQNR and accuracy of float, ORT and ours per target."""
    paths = {"float": model, "quantize_static": os.path.join(tmp, f"{name}_ort.onnx")}
    try:
        ort_quantize(model, calib, paths["quantize_static"], "minmax")
    except Exception as e:  # noqa: BLE001 - reported in the table
        return None, f"{name}: quantize_static fails: {str(e).splitlines()[0][:160]}"
    for target in TARGETS:
        out = os.path.join(tmp, f"{name}_{target}.onnx")
        p = subprocess.run([qb, "quantize", model, "--calib", calib, "--target", target, "--out", out],
                           capture_output=True, text=True)
        if p.returncode != 0:
            return None, f"{name}: QuantBench refuses it: {(p.stderr.strip().splitlines() or ['?'])[-1]}"
        paths[target] = out
    arrays = dict(np.load(evalset))
    lat = {t: dict(zip(paths, latencies(list(paths.values()), arrays, t))) for t in (1, 2)}
    ref = bench_corpus.outputs(model, evalset)
    quality = {}
    for k, p in paths.items():
        if k == "float":
            continue
        try:
            quality[k] = (bench_corpus.sqnr(ref, bench_corpus.outputs(p, evalset)), accuracy(p, evalset))
        except Exception as e:  # noqa: BLE001 - ORT's own export may not load (seen: basic_pitch)
            return None, f"{name}: {k} export does not run in ONNX Runtime: {str(e).splitlines()[0][:160]}"
    quality["float"] = (200.0, accuracy(model, evalset))
    return (name, lat, quality), None


def section(qb, samples=32):
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        models = []
        for name in SAMPLES:
            d = os.path.join(ROOT, "sample_models", name)
            models.append((name, os.path.join(d, "model.onnx"),
                           subset(os.path.join(d, "calib.npz"), os.path.join(tmp, f"{name}_calib.npz"), samples),
                           os.path.join(d, "eval.npz")))
        for m in bench_corpus.corpus():
            if m.get("status") == "fails":
                continue
            model, calib = bench_corpus.make_data(m["name"], tmp, samples)
            _, evalset = bench_corpus.make_data(m["name"], os.path.join(tmp, "eval"), 8)
            models.append((m["name"], model, calib, evalset))
        for name, model, calib, evalset in models:
            row, failure = one_model(qb, name, model, calib, evalset, tmp)
            if failure:
                failures.append(failure)
                print(failure, flush=True)
            else:
                rows.append(row)
                print(f"{name:<20} " + "  ".join(f"{k} {1e3 * v:.2f} ms" for k, v in row[1][1].items()), flush=True)
    lines = [
        "## Deployment: ONNX Runtime latency of the exports, per placement target",
        "",
        f"ONNX Runtime CPU, batch 1, default graph optimisations, median of interleaved runs (tests/oracle/"
        f"ort_latency.py), at 1 and 2 intra-op threads. All exports from the same {samples} calibration samples: "
        "ORT `quantize_static` (QDQ, per-channel, MinMax) and QuantBench's `quantize` defaults with `--target ort` "
        "(ONNX Runtime's placement), `--target tensorrt` (Q/DQ on the layers' inputs and residual Adds' residual "
        "inputs) and `--target npu` (every float activation). Ratio: latency / "
        "latency of ORT's own export (bar for `ort`: ≤ 1.05). SQNR: the export's outputs against the float "
        "model's, in ONNX Runtime (bar: ≥ ORT's − 0.5 dB); accuracy where the data is labelled. On a CPU without "
        "VNNI int8 is not faster than float for anyone: the ratio to ORT's own export is what counts.",
        "",
        "| model | threads | float (ms) | quantize_static (ms) | "
        + " | ".join(f"ours `{t}` (ms) | ratio" for t in TARGETS) + " |",
        "|---|---|---|---|" + "---|---|" * len(TARGETS),
    ]
    worst = 0.0
    for name, lat, _ in rows:
        for t in (1, 2):
            l = lat[t]
            base = l["quantize_static"]
            worst = max(worst, l["ort"] / base)
            lines.append(f"| {name} | {t} | {1e3 * l['float']:.2f} | {1e3 * base:.2f} | "
                         + " | ".join(f"{1e3 * l[k]:.2f} | {l[k] / base:.2f}" for k in TARGETS) + " |")
    lines += ["", f"Largest `ort` ratio: {worst:.2f}.", "",
              "| model | SQNR quantize_static (dB) | " + " | ".join(f"SQNR ours `{t}` (dB)" for t in TARGETS)
              + " | accuracy float / quantize_static / " + " / ".join(f"ours `{t}`" for t in TARGETS) + " |",
              "|---|---|" + "---|" * len(TARGETS) + "---|"]
    for name, _, q in rows:
        acc = " / ".join("–" if q[k][1] is None else f"{100 * q[k][1]:.2f} %"
                         for k in ("float", "quantize_static", *TARGETS))
        lines.append(f"| {name} | {q['quantize_static'][0]:.2f} | "
                     + " | ".join(f"{q[k][0]:.2f}" for k in TARGETS) + f" | {acc} |")
    if failures:
        lines += ["", "Not measured:", ""] + [f"- {f}" for f in failures]
    return lines


def main():
    qb = sys.argv[1]
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    print("\n".join(section(qb, samples)))


if __name__ == "__main__":
    main()
