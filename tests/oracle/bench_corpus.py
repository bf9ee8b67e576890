"""The real-world corpus part of the benchmark (issue 19), in one run per model:

  * calibrate + quantize + export with the defaults: QuantBench's CLI (`quantize`, per-channel)
    vs ONNX Runtime's quantize_static (QDQ, per-channel, MinMax, models below opset 13 converted
    by onnx.version_converter first, as its docs ask), on the same calibration samples: time, peak
    RSS and their ratios;
  * one plain float pass of ONNX Runtime over the same samples (the physical floor of any
    calibration: every sample must go through the network once);
  * output SQNR against the float model of both exports, run in ONNX Runtime on other samples;
  * QuantBench's peak RSS at 1x and 4x the calibration samples.

Usage: bench_corpus.py QUANTBENCH_BIN [SAMPLES]   (prints the Markdown section; bench.py embeds it)
Models marked `fails` in tests/corpus/corpus.json are listed with the line QuantBench refuses them with.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

from feeds import feeds as input_feeds

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def corpus():
    with open(os.path.join(ROOT, "tests", "corpus", "corpus.json")) as f:
        return json.load(f)["models"]


def make_data(name, out_dir, n):
    """corpus.py's deterministic data for `name` with `n` samples; returns (model, npz)."""
    sub = os.path.join(out_dir, f"n{n}")
    os.makedirs(sub, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(HERE, "corpus.py"), "data", name, sub, str(n)], check=True,
                   capture_output=True)
    return os.path.join(sub, f"{name}.onnx"), os.path.join(sub, f"{name}.npz")


def quantbench(qb, model, calib, out):
    env = dict(os.environ, QB_REPORT_PEAK_RSS="1")
    start = time.perf_counter()
    p = subprocess.run([qb, "quantize", model, "--calib", calib, "--out", out], capture_output=True, text=True,
                       env=env)
    seconds = time.perf_counter() - start
    if p.returncode != 0:
        return None, None, p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"
    kib = next(int(l.split()[-1]) for l in p.stderr.splitlines() if l.startswith("peak_rss_kib:"))
    return seconds, kib, None


def ort_static(model, calib, out):
    p = subprocess.run([sys.executable, os.path.join(HERE, "ort_quantize_timed.py"), model, calib, out, "minmax"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return None, None, (p.stderr.strip().splitlines() or ["failed"])[-1]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return r["seconds"], r["peak_rss_kib"], None


def session(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def float_pass(model, calib):
    """Seconds of one ORT float pass over the samples, one sample per run (as calibration runs)."""
    sess = session(model)
    arrays = np.load(calib)
    feeds = input_feeds(sess, arrays)
    n = len(next(iter(feeds.values())))
    sess.run(None, {k: v[:1] for k, v in feeds.items()})  # warm-up
    start = time.perf_counter()
    for i in range(n):
        sess.run(None, {k: v[i:i + 1] for k, v in feeds.items()})
    return time.perf_counter() - start


def outputs(path, data):
    sess = session(path)
    feeds = input_feeds(sess, np.load(data))
    n = len(next(iter(feeds.values())))
    runs = [sess.run(None, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
    return [np.concatenate([r[j] for r in runs]).astype(np.float64) for j in range(len(runs[0]))]


def sqnr(ref, got):
    """Output SQNR (dB) over all outputs together."""
    signal = sum(float(np.sum(r ** 2)) for r in ref)
    noise = sum(float(np.sum((r - g) ** 2)) for r, g in zip(ref, got))
    return 200.0 if noise == 0 else 10 * np.log10(signal / noise)


def section(qb, samples=32):
    rows, refused = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for m in corpus():
            name = m["name"]
            model, calib = make_data(name, tmp, samples)
            _, calib4 = make_data(name, tmp, 4 * samples)
            _, evalset = make_data(name, tmp, 8)
            q_out, o_out = os.path.join(tmp, f"{name}_qb.onnx"), os.path.join(tmp, f"{name}_ort.onnx")
            qs, qk, qerr = quantbench(qb, model, calib, q_out)
            os_, ok, oerr = ort_static(model, calib, o_out)
            if qerr:
                refused.append((name, m["opset"], qerr, oerr))
                print(f"{name:<20} refused: {qerr}", flush=True)
                continue
            _, qk4, _ = quantbench(qb, model, calib4, os.path.join(tmp, f"{name}_qb4.onnx"))
            fp = float_pass(model, calib)
            ref = outputs(model, evalset)
            qsq = sqnr(ref, outputs(q_out, evalset))
            osq = float("nan")
            if not oerr:
                try:
                    osq = sqnr(ref, outputs(o_out, evalset))
                except Exception as e:  # ORT's own export may not load in ORT (seen: basic_pitch)
                    oerr = f"its export does not load in ONNX Runtime: {str(e).splitlines()[0][:160]}"
            rows.append((name, m["opset"], qs, os_, fp, qk, ok, qk4, qsq, osq, oerr))
            print(f"{name:<20} QB {qs:6.2f}s  ORT {os_ or float('nan'):6.2f}s  float pass {fp:5.2f}s", flush=True)
    lines = [
        "## Real-world corpus: calibrate + quantize + export, QuantBench vs ONNX Runtime `quantize_static`",
        "",
        f"The models of tests/corpus/corpus.json with {samples} calibration samples each (corpus.py's data, batch 1), "
        "the defaults on both sides (QuantBench `quantize`: per-channel, MinMax, this CPU's profile; ORT: QDQ, "
        "per-channel QInt8 symmetric weights, QUInt8 activations, MinMax, opset < 13 converted first). QuantBench "
        "time is the whole command's wall clock; ORT time is quantize_static inside its script (no interpreter "
        "start); ORT peak includes Python and onnxruntime (about 100 MiB). Float pass: ONNX Runtime running the "
        "float model once over the same samples (default threads), the floor of any calibration. SQNR: all outputs "
        "of each export against the float model, in ONNX Runtime, on 8 other samples.",
        "",
        "| model | opset | QuantBench (s) | ORT in-script (s) | speed-up | float pass (s) | QuantBench / float pass "
        f"| QuantBench peak (MiB) | ORT peak (MiB) | QuantBench peak at {4 * samples} samples (MiB) | 4x / 1x "
        "| SQNR QuantBench (dB) | SQNR ORT (dB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, opset, qs, os_, fp, qk, ok, qk4, qsq, osq, oerr in rows:
        ort_t = f"{os_:.2f}" + (f" (then: {oerr})" if oerr else "") if os_ else f"fails ({oerr})"
        speed = f"{os_ / qs:.1f}x" if os_ else "-"
        ort_k = f"{ok / 1024:.0f}" if ok else "-"
        lines.append(f"| {name} | {opset} | {qs:.2f} | {ort_t} | {speed} | {fp:.2f} | {qs / fp:.1f}x | {qk / 1024:.0f} "
                     f"| {ort_k} | {qk4 / 1024:.0f} | {qk4 / qk:.2f} | {qsq:.2f} | {osq:.2f} |")
    if refused:
        lines += ["", "Refused by QuantBench (one line each):", ""]
        for name, opset, qerr, oerr in refused:
            lines.append(f"- {name} (opset {opset}): `{qerr}`" + (f"; ORT: `{oerr}`" if oerr else ""))
    return lines


def main():
    qb = sys.argv[1]
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    print("\n".join(section(qb, samples)))


if __name__ == "__main__":
    main()
