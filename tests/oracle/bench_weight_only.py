"""The weight-only part of the benchmark (issue 18): 4-bit block-wise weights (blocks of 32 along
K, MatMulNBits) by QuantBench's CLI and by ONNX Runtime's own MatMulNBitsQuantizer
(tests/oracle/ort_weight_only.py), per algorithm, on the token transformer sample (labels) and on
the generated ~59 MB transformer with external data (scripts/make_large_transformer.py):

  * time: QuantBench's whole process (load, quantize, write) vs ORT's in-script time (load,
    quantize, save; Python start and imports excluded);
  * peak RSS: QuantBench's process vs ORT's (its process, interpreter and ORT included; the RSS
    after imports is shown beside it);
  * size of the export (with external data) against the float model;
  * accuracy against the float model, both exports run in ONNX Runtime on the evaluation set:
    mean output cosine, output SQNR, top-1 agreement, and accuracy where there are labels.

ORT's HQQ needs PyTorch, which is not installable here (CUDA wheels of several GB): it runs on
ort_weight_only.py's numpy stand-in for the torch calls (`--torch-shim`). ORT 1.31.1's GPTQ
propagates no error (a transposed Cholesky factor) and gives RTN's weights: it is run as shipped
and with that line fixed (`--gptq-fix`).

Usage: bench_weight_only.py QUANTBENCH_BIN   (prints the Markdown section; bench.py embeds it)
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ORACLE = os.path.join(HERE, "ort_weight_only.py")


def peak_rss_run(cmd):
    """Runs `cmd` in a fresh child of a fresh Python; returns (seconds, peak RSS MiB, stderr)."""
    probe = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'seconds': dt, 'rss': rss, 'code': p.returncode, 'err': p.stderr[-400:]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["seconds"], r["rss"], (r["err"].strip().splitlines() or [""])[-1] if r["code"] else None


def size_of(path):
    return sum(os.path.getsize(p) for p in (path, path + ".data") if os.path.exists(p))


def quantbench(qb, model, out, algorithm, calib):
    """QuantBench on the layers ORT's quantizer takes (MatMul: the embedding Gather kept float), or
    with the embedding table quantized too (`+embedding`)."""
    embedding = algorithm.endswith("+embedding")
    algorithm = algorithm.removesuffix("+embedding")
    cmd = [qb, "quantize", model, "--weights-only", "--w-bits", "4", "--block-size", "32",
           "--weight-format", "matmulnbits", "--weight-algorithm", algorithm, "--out", out]
    if not embedding:
        cmd += ["--float-op", "Gather"]
    if algorithm in ("gptq", "awq"):
        cmd += ["--calib", calib]
    seconds, rss, err = peak_rss_run(cmd)
    return {"seconds": seconds, "rss": rss, "base": None, "err": err}


def ort_quantizer(model, out, algorithm, calib):
    cmd = [sys.executable, ORACLE, "quantize", model, out, "--bits", "4", "--block-size", "32"]
    algo = {"rtn": ["rtn"], "hqq": ["hqq", "--torch-shim"], "gptq": ["gptq", "--calib", calib],
            "gptq-fixed": ["gptq", "--calib", calib, "--gptq-fix"]}[algorithm]
    cmd += ["--algorithm", *algo]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if p.returncode or not lines:
        return {"seconds": None, "rss": None, "base": None, "err": (p.stderr.strip().splitlines() or ["failed"])[-1]}
    r = json.loads(lines[-1])
    return {"seconds": r["seconds"], "wall": wall, "rss": r["peak_rss_mib"], "base": r.get("rss_after_imports_mib"),
            "err": None}


def compare(float_model, quant, evalset, labels):
    cmd = [sys.executable, ORACLE, "compare", float_model, quant, evalset] + (["--labels"] if labels else [])
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def models(tmp):
    tokens = os.path.join(ROOT, "sample_models", "tokens")
    large = os.path.join(tmp, "large")
    # 1024 evaluation samples: top-1 agreement over 10 near-tied classes of random logits moves by
    # several points between runs on 128.
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_large_transformer.py"), large,
                    "--n-eval", "1024"], check=True, capture_output=True)
    return [("tokens sample (0.42 MB)", tokens, True),
            ("generated transformer (59 MB, external data, 1024 eval samples)", large, False)]


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def section(qb):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, folder, labels in models(tmp):
            model = os.path.join(folder, "model.onnx")
            calib, evalset = os.path.join(folder, "calib.npz"), os.path.join(folder, "eval.npz")
            float_bytes = size_of(model)
            runs = [("rtn", "QuantBench"), ("rtn", "ORT"), ("hqq", "QuantBench"), ("hqq", "ORT"),
                    ("gptq", "QuantBench"), ("gptq", "ORT"), ("gptq-fixed", "ORT"), ("awq", "QuantBench"),
                    ("rtn+embedding", "QuantBench")]
            for algorithm, tool in runs:
                out = os.path.join(tmp, f"{os.path.basename(folder)}_{tool}_{algorithm.replace('+', '_')}", "model.onnx")
                os.makedirs(os.path.dirname(out))
                t0 = time.perf_counter()
                r = (quantbench(qb, model, out, algorithm, calib) if tool == "QuantBench"
                     else ort_quantizer(model, out, algorithm, calib))
                c = compare(model, out, evalset, labels) if not r["err"] else {}
                rows.append((label, algorithm, tool, r, size_of(out) / float_bytes if not r["err"] else None, c))
                print(f"{label[:12]:<12} {algorithm:<10} {tool:<10} {time.perf_counter() - t0:6.1f}s "
                      f"{r['err'] or ''}", file=sys.stderr, flush=True)
    lines = [
        "## Weight-only 4-bit: QuantBench vs ONNX Runtime's MatMulNBitsQuantizer",
        "",
        "4-bit weights in blocks of 32 along K, exported as MatMulNBits (QuantBench: "
        "`quantize --weights-only --w-bits 4 --block-size 32 --weight-format matmulnbits --weight-algorithm A`, "
        "asymmetric unsigned grid as ORT's default; GPTQ and AWQ with `--calib`; the embedding Gather kept float with "
        "`--float-op Gather`, as ORT's quantizer takes only MatMul, except in the `rtn+embedding` row). ORT: "
        "`tests/oracle/ort_weight_only.py quantize` (ORT 1.31.1's quantizer in-process; HQQ on a numpy stand-in "
        "for the torch calls it makes, since PyTorch is not installable here; GPTQ as shipped, which propagates "
        "no error, and with that line fixed). Time: QuantBench's whole process vs ORT's in-script load + "
        "quantize + save, and in brackets its whole process (interpreter and imports included). RSS: peak of the process (ORT's after imports in brackets). Accuracy: both exports run "
        "in ONNX Runtime on the evaluation set against the float model.",
        "",
        "| model | algorithm | tool | time s | peak RSS MiB | size vs float | cosine | SQNR dB | top-1 agreement | accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, algorithm, tool, r, ratio, c in rows:
        if r["err"]:
            lines.append(f"| {label} | {algorithm} | {tool} | – | – | – | refused: {r['err'][:120]} | | | |")
            continue
        rss = fmt(r["rss"], ".0f") + (f" ({r['base']:.0f})" if r["base"] else "")
        seconds = fmt(r["seconds"], ".2f") + (f" ({r['wall']:.2f})" if r.get("wall") else "")
        acc = c.get("quant_accuracy")
        lines.append(
            f"| {label} | {algorithm} | {tool} | {seconds} | {rss} | {fmt(ratio, '.3f')} | "
            f"{fmt(c.get('cosine_mean'), '.4f')} | {fmt(c.get('sqnr_db'), '.2f')} | "
            f"{fmt(100 * c['top1_agreement'] if 'top1_agreement' in c else None, '.1f')} % | "
            f"{fmt(100 * acc if acc is not None else None, '.2f')}{' %' if acc is not None else ''} |")
    return lines


def main():
    print("\n".join(section(sys.argv[1])))


if __name__ == "__main__":
    main()
