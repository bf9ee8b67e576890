"""The QuantBench benchmark (issue: benchmarks side by side with ONNX Runtime's quantization tool).

For every sample model, in one run:
  * calibrate + quantize + export with MinMax, Percentile and Entropy: QuantBench's CLI vs ONNX
    Runtime's quantize_static (QDQ, per-channel, the same calibration samples): wall time, peak
    memory and their ratios; accuracy of both exported models in ONNX Runtime on the eval set;
  * peak memory of QuantBench calibration at 1x and 8x the calibration samples;
  * QuantBench's simulated-evaluation throughput vs plain tract inference, and incremental
    re-evaluation latency (the bench_simulate binary);
  * ONNX Runtime latency of the exports per placement target vs quantize_static's (bench_latency.py);
  * the real-world corpus (bench_corpus.py): time and peak RSS vs quantize_static, the float-pass
    floor, output SQNR of both exports, RSS at 1x vs 4x the calibration samples;
  * weight-only 4-bit (bench_weight_only.py): time, peak RSS, size and accuracy vs ONNX Runtime's
    MatMulNBitsQuantizer (RTN, HQQ, GPTQ) on the token sample and a generated 59 MB transformer.
Prints a table and writes BENCHMARKS.md. Usage: bench.py QUANTBENCH_BIN BENCH_SIMULATE_BIN OUT_MARKDOWN
"""
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

import bench_corpus
import bench_weight_only
import bench_latency

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODELS = ["mlp", "cnn", "mobilenet", "transformer"]
METHODS = {"minmax": "minmax", "percentile": "percentile", "entropy": "entropy"}
# Each timed command runs this many times; the table shows the median time and the largest peak.
REPEATS = int(os.environ.get("QB_BENCH_REPEATS", "5"))


def repeated(run):
    """Runs `run()` (returning (seconds, ..., peak_kib)) REPEATS times: median of each time, max peak."""
    results = [run() for _ in range(REPEATS)]
    *times, peaks = zip(*results)
    return (*(float(np.median(t)) for t in times), max(peaks))


def sample(name, f):
    return os.path.join(ROOT, "sample_models", name, f)


def ort_accuracy(path, name):
    ev = np.load(sample(name, "eval.npz"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"input": ev["input"]})[0]
    return float(np.mean(logits.argmax(1) == ev["labels"]))


def run_quantbench(qb, name, calib, out, observer):
    env = dict(os.environ, QB_REPORT_PEAK_RSS="1")
    start = time.perf_counter()
    p = subprocess.run([qb, "quantize", sample(name, "model.onnx"), "--calib", calib, "--observer", observer,
                        "--out", out], capture_output=True, text=True, env=env, check=True)
    seconds = time.perf_counter() - start
    kib = next(int(l.split()[-1]) for l in p.stderr.splitlines() if l.startswith("peak_rss_kib:"))
    return seconds, kib


def run_ort(name, out, method):
    """ORT's quantize_static in a fresh Python process: (wall seconds including interpreter and
    imports, as a user's script pays them; seconds inside the script; peak RSS)."""
    start = time.perf_counter()
    p = subprocess.run([sys.executable, os.path.join(HERE, "ort_quantize_timed.py"), sample(name, "model.onnx"),
                        sample(name, "calib.npz"), out, method], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return wall, r["seconds"], r["peak_rss_kib"]


def tiled(name, factor, path):
    x = np.load(sample(name, "calib.npz"))["input"]
    np.savez_compressed(path, input=np.concatenate([x] * factor))


def calib_memory(qb, name, path):
    env = dict(os.environ, QB_REPORT_PEAK_RSS="1")
    p = subprocess.run([qb, "calibrate", sample(name, "model.onnx"), "--calib", path], capture_output=True,
                       text=True, env=env, check=True)
    return next(int(l.split()[-1]) for l in p.stderr.splitlines() if l.startswith("peak_rss_kib:"))


def main():
    qb, bench_sim, out_md = sys.argv[1:4]
    rows, mem_rows = [], []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            for method, observer in METHODS.items():
                q_out = os.path.join(tmp, f"{name}_{method}_qb.onnx")
                o_out = os.path.join(tmp, f"{name}_{method}_ort.onnx")
                qs, qk = repeated(lambda: run_quantbench(qb, name, sample(name, "calib.npz"), q_out, observer))
                os_, inner, ok = repeated(lambda: run_ort(name, o_out, method))
                rows.append((name, method, qs, os_, inner, qk, ok, ort_accuracy(q_out, name), ort_accuracy(o_out, name)))
                print(f"{name:<12} {method:<10} QB {qs:6.2f}s  ORT {os_:6.2f}s ({inner:.2f}s in-script)", flush=True)
            one = os.path.join(tmp, f"{name}_x1.npz")
            eight = os.path.join(tmp, f"{name}_x8.npz")
            tiled(name, 1, one)
            tiled(name, 8, eight)
            mem_rows.append((name, calib_memory(qb, name, one), calib_memory(qb, name, eight)))
        sim = subprocess.run([bench_sim], capture_output=True, text=True, check=True).stdout
    corpus_lines = bench_corpus.section(qb, int(os.environ.get("QB_BENCH_CORPUS_SAMPLES", "32")))
    weight_only_lines = bench_weight_only.section(qb)
    latency_lines = bench_latency.section(qb, int(os.environ.get("QB_BENCH_LATENCY_SAMPLES", "32")))
    total = time.perf_counter() - started
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = set(next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), []))
    int8 = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    cpu += f"; int8 features: {', '.join(int8) or 'none'} ({'VNNI' if vnni else 'no VNNI'}: ONNX Runtime profile "
    cpu += f"{'ort-x86-vnni' if vnni else 'ort-x86-avx2'}, whose default QuantBench weights are {8 if vnni else 7}-bit)"
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, {platform.platform()}; "
        f"onnxruntime {ort.__version__}. QuantBench: the dev-profile binary (dependencies and core at opt-level 2). "
        f"Whole run: {total:.0f} s. Regenerate with `bash scripts/bench.sh`.",
        "",
        "## Calibrate + quantize + export: QuantBench CLI vs ONNX Runtime `quantize_static`",
        "",
        "Same 256 calibration samples (batch 1), QDQ, per-channel int8 weights (QuantBench: its defaults for this CPU, see above), uint8 activations. Times are wall "
        "clock of the whole command (process start to exported file; ORT wall includes starting Python and importing "
        "onnxruntime, as a user's script pays them; in-script is quantize_static alone), the median of "
        f"{REPEATS} runs; peak memory is the largest of them. Accuracy is each exported model run in ONNX "
        "Runtime on the 397-sample eval set.",
        "",
        "| model | calibrator | QuantBench (s) | ORT wall (s) | ORT in-script (s) | speed-up wall / in-script | QuantBench peak (MiB) | ORT peak (MiB) | memory ratio | accuracy QuantBench | accuracy ORT |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, method, qs, os_, inner, qk, ok, qa, oa in rows:
        lines.append(f"| {name} | {method} | {qs:.2f} | {os_:.2f} | {inner:.2f} | {os_ / qs:.1f}x / {inner / qs:.1f}x | "
                     f"{qk / 1024:.1f} | {ok / 1024:.1f} | {ok / qk:.1f}x | {100 * qa:.2f} % | {100 * oa:.2f} % |")
    worst = min(os_ / qs for _, _, qs, os_, *_ in rows)
    worst_inner = min(inner / qs for _, _, qs, _, inner, *_ in rows)
    lines += ["", f"Smallest speed-up: {worst:.1f}x wall clock, {worst_inner:.1f}x against ORT's in-script time "
              "(target: at least 10x).", "",
              "## Peak memory of QuantBench calibration, 1x vs 8x the calibration samples", "",
              "| model | 256 samples (MiB) | 2048 samples (MiB) | ratio |", "|---|---|---|---|"]
    for name, a, b in mem_rows:
        lines.append(f"| {name} | {a / 1024:.1f} | {b / 1024:.1f} | {b / a:.3f} |")
    lines += ["", "## Simulation throughput and incremental re-evaluation (bench_simulate)", "", sim.strip(), ""]
    lines += [""] + corpus_lines + [""] + weight_only_lines + [""] + latency_lines + [""]
    text = "\n".join(lines) + "\n"
    with open(out_md, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
