"""Synthetic inputs for the corpus data: rendered text (pages, lines, captchas, scenes), speech-
like and musical audio, and file-like byte strings for Magika. Everything takes a numpy
Generator, so a fixed seed gives the same samples. Used by make_data.py."""

from __future__ import annotations

import gzip
import io
import json
import math
import tarfile
import wave
import zipfile

import numpy as np

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there would their we him been has when who will more no "
    "if out so said what up its about into than them can only other new some could time these "
    "two may then do first any my now such like our over man me even most made after also did "
    "many before must through back years where much your way well down should because each just "
    "those people how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old year "
    "off come since against go came right used take three invoice total amount date page section "
    "table figure report quantization model network layer tensor weight value error result sample "
    "order number street city phone email account balance payment receipt customer product price"
).split()
ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"

# ---------------------------------------------------------------- images (Pillow)

def pil():
    from PIL import Image, ImageDraw, ImageFont

    return Image, ImageDraw, ImageFont


_FONTS: dict[int, object] = {}


def font(size: int):
    """Pillow's embedded TrueType font (Aileron), so no system font is needed."""
    if size not in _FONTS:
        _FONTS[size] = pil()[2].load_default(size=size)
    return _FONTS[size]


def sentence(rng, n_words: int) -> str:
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), n_words)]
    if rng.random() < 0.5:
        words[0] = words[0].capitalize()
    if rng.random() < 0.3:
        words.insert(int(rng.integers(0, len(words) + 1)), str(int(rng.integers(1, 10000))))
    return " ".join(words) + ("." if rng.random() < 0.4 else "")


def light_color(rng) -> tuple:
    return tuple(int(v) for v in rng.integers(200, 256, 3))


def dark_color(rng) -> tuple:
    return tuple(int(v) for v in rng.integers(0, 70, 3))


def add_noise(img: np.ndarray, rng, sigma: float) -> np.ndarray:
    noisy = img.astype(np.float32) + rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def render_page(rng, width: int, height: int) -> np.ndarray:
    """A document-like page: a title, paragraphs of left-aligned text lines, sometimes a rule."""
    Image, ImageDraw, _ = pil()
    img = Image.new("RGB", (width, height), light_color(rng))
    d = ImageDraw.Draw(img)
    margin = int(rng.integers(8, max(9, width // 10)))
    y = int(rng.integers(4, max(5, height // 12)))
    size = int(rng.integers(14, 24))
    first = True
    while y < height - size:
        s = size + 6 if first else size
        f = font(s)
        r = 0.0 if first else rng.random()
        if r < 0.88:
            text = sentence(rng, int(rng.integers(2, 4)) if first else int(rng.integers(3, 12)))
            # Trim to fit the line.
            while text and d.textlength(text, font=f) > width - 2 * margin:
                text = text.rsplit(" ", 1)[0] if " " in text else text[:-1]
            indent = int(rng.integers(0, 3)) * s if not first else 0
            d.text((margin + indent, y), text, fill=dark_color(rng), font=f)
        elif r < 0.94:
            d.line((margin, y + s // 2, width - margin, y + s // 2), fill=dark_color(rng), width=1)
        y += int(s * (1.8 if first else rng.uniform(1.25, 1.6)))
        first = False
    return add_noise(np.asarray(img), rng, float(rng.uniform(0, 6)))


def render_line(rng, height: int, text: str | None = None) -> np.ndarray:
    """A cropped text line, as a detector would hand it to a recognizer (RGB uint8)."""
    Image, ImageDraw, _ = pil()
    text = text or sentence(rng, int(rng.integers(1, 6)))
    size = int(height * rng.uniform(0.6, 0.8))
    f = font(size)
    d0 = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x0, y0, x1, y1 = d0.textbbox((0, 0), text, font=f)
    pad = int(rng.integers(2, max(3, height // 4)))
    w = x1 - x0 + 2 * pad
    img = Image.new("RGB", (w, height), light_color(rng))
    d = ImageDraw.Draw(img)
    d.text((pad - x0, (height - (y1 - y0)) // 2 - y0), text, fill=dark_color(rng), font=f)
    return add_noise(np.asarray(img), rng, float(rng.uniform(0, 8)))


def resize(img: np.ndarray, width: int, height: int, method: str = "bilinear") -> np.ndarray:
    Image = pil()[0]
    resample = {"bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS}[method]
    return np.asarray(Image.fromarray(img).resize((width, height), resample))


def rgb_to_bgr(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img[..., ::-1])


def captcha(rng, width: int, height: int) -> np.ndarray:
    """A 4-6 character text captcha: coloured background, jittered glyphs, noise lines."""
    Image, ImageDraw, _ = pil()
    top, bottom = np.array(light_color(rng), np.float32), np.array(light_color(rng), np.float32)
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    bg = np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).astype(np.uint8)
    img = Image.fromarray(bg.copy())
    n = int(rng.integers(4, 7))
    step = width / (n + 0.6)
    for i in range(n):
        ch = ALNUM[int(rng.integers(0, len(ALNUM)))]
        size = int(rng.integers(int(height * 0.55), int(height * 0.85)))
        glyph = Image.new("L", (size * 2, size * 2), 0)
        ImageDraw.Draw(glyph).text((size // 2, size // 3), ch, fill=255, font=font(size))
        glyph = glyph.rotate(float(rng.uniform(-25, 25)), resample=Image.BILINEAR)
        color = Image.new("RGB", glyph.size, tuple(int(v) for v in rng.integers(0, 150, 3)))
        x = int(step * (i + 0.3) + rng.uniform(-3, 3)) - size // 2
        y = int(rng.uniform(-height * 0.2, height * 0.05)) - size // 6
        img.paste(color, (x, y), glyph)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 4))):
        pts = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(2)]
        d.line(pts, fill=dark_color(rng), width=int(rng.integers(1, 3)))
    return add_noise(np.asarray(img), rng, float(rng.uniform(2, 12)))


def click_scene(rng, width: int, height: int) -> np.ndarray:
    """A click-captcha-like scene: a smooth colourful background with a few large glyphs."""
    Image, ImageDraw, _ = pil()
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    bg = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        for _ in range(3):
            fx, fy, ph = rng.uniform(0.002, 0.02), rng.uniform(0.002, 0.02), rng.uniform(0, 6.3)
            bg[..., c] += np.sin(xx * fx * 6.3 + yy * fy * 6.3 + ph)
    bg = (bg - bg.min()) / (np.ptp(bg) + 1e-6) * 200 + 30
    img = Image.fromarray(bg.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        ch = ALNUM[int(rng.integers(0, len(ALNUM)))]
        size = int(rng.integers(28, 64))
        glyph = Image.new("L", (size * 2, size * 2), 0)
        ImageDraw.Draw(glyph).text((size // 2, size // 3), ch, fill=255, font=font(size))
        glyph = glyph.rotate(float(rng.uniform(-40, 40)), resample=Image.BILINEAR)
        color = Image.new("RGB", glyph.size, tuple(int(v) for v in rng.integers(0, 256, 3)))
        img.paste(color, (int(rng.integers(-size // 2, width - size)), int(rng.integers(-size // 2, height - size))), glyph)
    d.rectangle((0, 0, width - 1, height - 1), outline=dark_color(rng))
    return add_noise(np.asarray(img), rng, 3.0)


# ---------------------------------------------------------------- audio

VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410), (440, 1020, 2240)]


def speech_like(rng, n: int, sr: int) -> np.ndarray:
    """Voiced syllables (a glottal harmonic series shaped by vowel formants, with a pitch contour
    and a syllable envelope), fricative noise bursts and pauses."""
    out = np.zeros(n, np.float32)
    pos = int(rng.integers(0, sr // 10))
    f0_base = rng.uniform(90, 240)
    while pos < n:
        dur = int(sr * rng.uniform(0.08, 0.3))
        t = np.arange(dur) / sr
        if rng.random() < 0.2:  # fricative
            seg = rng.normal(0, 1, dur).astype(np.float32)
            seg = np.diff(seg, prepend=0.0).astype(np.float32) * 0.3
        else:
            f0 = f0_base * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(1, 4) * t + rng.uniform(0, 6.3)))
            phase = 2 * np.pi * np.cumsum(f0) / sr
            formants = VOWELS[int(rng.integers(0, len(VOWELS)))]
            seg = np.zeros(dur, np.float32)
            for k in range(1, int(min(40, 4000 / f0_base))):
                fk = k * f0_base
                gain = sum(1.0 / (1 + ((fk - f) / 120.0) ** 2) for f in formants) / k**0.5
                seg += (gain * np.sin(k * phase)).astype(np.float32)
        env = np.sin(np.pi * np.linspace(0, 1, dur)) ** 0.6
        end = min(n, pos + dur)
        out[pos:end] += (seg * env)[: end - pos] * rng.uniform(0.3, 1.0)
        pos = end + (int(sr * rng.uniform(0.1, 0.4)) if rng.random() < 0.25 else int(sr * rng.uniform(0, 0.04)))
    return out / (np.abs(out).max() + 1e-6)


def tones(rng, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    out = np.zeros(n, np.float64)
    for _ in range(int(rng.integers(1, 4))):
        f = rng.uniform(100, 3000)
        if rng.random() < 0.4:  # chirp
            f1 = rng.uniform(100, 3000)
            out += np.sin(2 * np.pi * (f * t + (f1 - f) * t**2 / (2 * t[-1])))
        else:
            out += np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) * rng.uniform(0.2, 1)
    return (out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def noise(rng, n: int) -> np.ndarray:
    w = rng.normal(0, 1, n)
    if rng.random() < 0.5:  # pink-ish: integrate and high-pass
        w = np.cumsum(w)
        w -= np.convolve(w, np.ones(64) / 64, mode="same")
    return (w / (np.abs(w).max() + 1e-9)).astype(np.float32)


def audio_clip(rng, n: int, sr: int, i: int) -> np.ndarray:
    """Clip i of a set: cycles through speech, noisy speech, tones and noise/near-silence."""
    kind = i % 4
    if kind == 0:
        x = speech_like(rng, n, sr) + 0.01 * noise(rng, n)
    elif kind == 1:
        x = speech_like(rng, n, sr) + rng.uniform(0.05, 0.4) * noise(rng, n)
    elif kind == 2:
        x = tones(rng, n, sr) + 0.02 * noise(rng, n)
    else:
        x = noise(rng, n) * rng.choice([1.0, 0.02])
    return (x / (np.abs(x).max() + 1e-9) * rng.uniform(0.1, 0.9)).astype(np.float32)


def piano_clip(rng, n: int, sr: int) -> np.ndarray:
    """Piano-like notes: MIDI pitches 36-96, decaying inharmonic partials, up to 4 at once."""
    out = np.zeros(n, np.float64)
    t_all = np.arange(n) / sr
    for _ in range(int(rng.integers(3, 12))):
        midi = int(rng.integers(36, 97))
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        start = int(rng.integers(0, n - sr // 10))
        t = t_all[: n - start]
        decay = rng.uniform(1.5, 6.0)
        note = np.zeros_like(t)
        for k in range(1, 9):
            fk = k * f0 * math.sqrt(1 + 0.0004 * k * k)
            if fk > sr / 2:
                break
            note += np.sin(2 * np.pi * fk * t) / k * np.exp(-decay * k**0.5 * t)
        note *= np.minimum(1.0, t / 0.005)
        out[start:] += note * rng.uniform(0.3, 1.0)
    out += 0.005 * rng.normal(0, 1, n)
    return (out / (np.abs(out).max() + 1e-9) * rng.uniform(0.3, 0.9)).astype(np.float32)


# ---------------------------------------------------------------- magika

def _text_file(rng, kind: str) -> bytes:
    w = lambda k=1: " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), k))  # noqa: E731
    ident = lambda: "_".join(WORDS[i] for i in rng.integers(0, len(WORDS), 2))  # noqa: E731
    n = int(rng.integers(3, 40))
    lines: list[str] = []
    if kind == "python":
        lines.append("import os\nimport sys\n")
        for _ in range(n // 3 + 1):
            f = ident()
            lines += [f"def {f}({ident()}, {ident()}=None):", f'    """{w(6)}."""', f"    x = {int(rng.integers(0, 99))}",
                      f"    for i in range(x):", f"        print('{w(3)}', i)", "    return x", ""]
        lines.append('if __name__ == "__main__":\n    main()')
    elif kind == "javascript":
        for _ in range(n // 3 + 1):
            lines += [f"function {ident()}(a, b) {{", f"  const {ident()} = a + b * {int(rng.integers(0, 99))};",
                      f"  console.log('{w(3)}');", "  return a;", "}", ""]
        lines.append("module.exports = { };")
    elif kind == "c":
        lines += ["#include <stdio.h>", "#include <stdlib.h>", ""]
        for _ in range(n // 3 + 1):
            lines += [f"static int {ident()}(int a, const char *s) {{", f"    int {ident()} = a * {int(rng.integers(0, 99))};",
                      f'    printf("{w(3)} %d\\n", a);', "    return a;", "}", ""]
        lines += ["int main(int argc, char **argv) {", "    return 0;", "}"]
    elif kind == "json":
        items = {ident(): (w(2) if rng.random() < 0.5 else int(rng.integers(0, 1000))) for _ in range(n)}
        return json.dumps({"data": [items, {"id": int(rng.integers(0, 99)), "tags": [w(), w()]}]}, indent=2).encode()
    elif kind == "csv":
        cols = [ident() for _ in range(int(rng.integers(3, 7)))]
        lines.append(",".join(cols))
        for _ in range(n * 2):
            lines.append(",".join(str(int(rng.integers(0, 9999))) if rng.random() < 0.5 else w() for _ in cols))
    elif kind == "html":
        lines += ["<!DOCTYPE html>", "<html>", "<head>", f"<title>{w(3)}</title>", '<meta charset="utf-8">', "</head>", "<body>"]
        for _ in range(n):
            lines.append(f'<div class="{ident()}"><p>{w(8)}</p><a href="/{ident()}.html">{w(2)}</a></div>')
        lines += ["</body>", "</html>"]
    elif kind == "xml":
        lines += ['<?xml version="1.0" encoding="UTF-8"?>', "<catalog>"]
        for i in range(n):
            lines.append(f'  <item id="{i}"><name>{w(2)}</name><value>{int(rng.integers(0, 999))}</value></item>')
        lines.append("</catalog>")
    elif kind == "markdown":
        lines += [f"# {w(3)}", ""]
        for _ in range(n // 4 + 1):
            lines += [f"## {w(2)}", "", w(20) + ".", "", f"- {w(4)}", f"- **{w(2)}** `{ident()}`", ""]
    elif kind == "yaml":
        for _ in range(n // 3 + 1):
            lines += [f"{ident()}:", f"  name: {w(2)}", f"  count: {int(rng.integers(0, 99))}", f"  items:", f"    - {w()}", f"    - {w()}"]
    elif kind == "ini":
        for _ in range(n // 4 + 1):
            lines += [f"[{ident()}]", f"{ident()} = {w()}", f"{ident()} = {int(rng.integers(0, 99))}", f"{ident()} = true", ""]
    elif kind == "shell":
        lines += ["#!/bin/bash", "set -euo pipefail", ""]
        for _ in range(n // 3 + 1):
            v = ident().upper()
            lines += [f'{v}="${{1:-{w()}}}"', f'if [ -f "${v}" ]; then', f'  echo "{w(3)}" >> "${v}"', "fi"]
    elif kind == "sql":
        t = ident()
        lines.append(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT, value REAL);")
        for i in range(n):
            lines.append(f"INSERT INTO {t} (id, name, value) VALUES ({i}, '{w(2)}', {rng.uniform(0, 99):.2f});")
        lines.append(f"SELECT name, SUM(value) FROM {t} GROUP BY name ORDER BY 2 DESC;")
    elif kind == "css":
        for _ in range(n // 2 + 1):
            lines += [f".{ident()} {{", f"  margin: {int(rng.integers(0, 20))}px;", f"  color: #{int(rng.integers(0, 0xFFFFFF)):06x};", "}", ""]
    elif kind == "txt":
        for _ in range(n):
            lines.append(sentence(rng, int(rng.integers(5, 16))))
    else:
        raise ValueError(kind)
    return ("\n".join(lines) + "\n").encode()


def _image_file(rng, fmt: str) -> bytes:
    Image = pil()[0]
    w, h = int(rng.integers(16, 200)), int(rng.integers(16, 200))
    img = Image.fromarray(render_page(rng, max(w, 40), max(h, 40)) if rng.random() < 0.5 else
                          rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def make_file(rng, kind: str) -> bytes:
    if kind in ("png", "jpeg", "gif", "bmp"):
        return _image_file(rng, {"jpeg": "JPEG"}.get(kind, kind.upper()))
    if kind == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for _ in range(int(rng.integers(1, 5))):
                info = zipfile.ZipInfo(f"{WORDS[int(rng.integers(0, len(WORDS)))]}.txt", date_time=(2024, 1, 1, 0, 0, 0))
                z.writestr(info, _text_file(rng, "txt"), zipfile.ZIP_DEFLATED)
        return buf.getvalue()
    if kind == "gzip":
        return gzip.compress(_text_file(rng, "csv"), mtime=0)
    if kind == "tar":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
            for _ in range(int(rng.integers(1, 4))):
                data = _text_file(rng, "python")
                info = tarfile.TarInfo(f"src/{WORDS[int(rng.integers(0, len(WORDS)))]}.py")
                info.size, info.mtime = len(data), 0
                t.addfile(info, io.BytesIO(data))
        return buf.getvalue()
    if kind == "wav":
        buf = io.BytesIO()
        with wave.open(buf, "wb") as wv:
            wv.setnchannels(1)
            wv.setsampwidth(2)
            wv.setframerate(16000)
            wv.writeframes((audio_clip(rng, int(rng.integers(2000, 20000)), 16000, int(rng.integers(0, 4))) * 32767).astype("<i2").tobytes())
        return buf.getvalue()
    if kind == "npy":
        buf = io.BytesIO()
        np.save(buf, rng.normal(0, 1, (int(rng.integers(1, 50)), int(rng.integers(1, 20)))).astype(np.float32))
        return buf.getvalue()
    if kind == "pdf":
        body = " ".join(f"({sentence(rng, 6)}) Tj T*" for _ in range(int(rng.integers(2, 20))))
        stream = f"BT /F1 12 Tf 72 720 Td 14 TL {body} ET".encode()
        objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
                b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
                b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
        out, offsets = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", []
        for i, o in enumerate(objs, 1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
        return out
    if kind == "randombytes":
        return rng.bytes(int(rng.integers(100, 8000)))
    return _text_file(rng, kind)


MAGIKA_KINDS = ["python", "javascript", "c", "json", "csv", "html", "xml", "markdown", "yaml", "ini", "shell", "sql",
                "css", "txt", "png", "jpeg", "gif", "bmp", "zip", "gzip", "tar", "wav", "npy", "pdf", "randombytes"]


def magika_features(content: bytes, beg_size: int, end_size: int, block_size: int, padding: int) -> np.ndarray:
    """Magika 1.0's feature extraction (standard_v3_3: beg 1024 + end 1024, no mid)."""
    n = min(block_size, len(content))
    beg = content[:n]
    end = content[len(content) - n :]
    beg = beg.strip() if len(content) <= block_size else beg.lstrip()
    end = end.strip() if len(content) <= block_size else end.rstrip()
    beg_ints = list(beg[:beg_size]) + [padding] * max(0, beg_size - len(beg))
    end_ints = [padding] * max(0, end_size - len(end)) + list(end[-end_size:] if end else b"")
    return np.array(beg_ints + end_ints, np.int32)
