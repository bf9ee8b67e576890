#!/usr/bin/env python3
"""Surveys the corpus models: opset, op histogram, I/O, symbolic dims, and an ONNX Runtime run.

    python tests/corpus/survey.py [NAME ...] [--data DIR] [--eval N] [--json OUT]

For each model (fetched by fetch.py): the default-domain opset and other domains, op types with
counts (nodes inside If/Loop/Scan subgraphs included, and counted separately), inputs and
outputs with dtypes and declared dims, whether any value_info or graph I/O dim is symbolic, and
whether ONNX Runtime runs it on the generated evaluation data: from DIR/<name>/eval.npz when
--data is given, else generated in memory with make_data (N samples, default 64). For labelled
sets it also prints the top-1 accuracy of the float model, and for every output its shape and
value range.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
import make_data  # noqa: E402


def dims(v) -> list:
    tt = v.type.tensor_type
    if not tt.HasField("shape"):
        return ["<no shape>"]
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]


def walk(graph, depth=0):
    for node in graph.node:
        yield node, depth
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from walk(a.g, depth + 1)
            for g in a.graphs:
                yield from walk(g, depth + 1)


def value_infos(graph):
    yield from graph.value_info
    for node in graph.node:
        for a in node.attribute:
            subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
            for g in subs:
                yield from g.input
                yield from g.output
                yield from value_infos(g)


def is_symbolic(v) -> bool:
    return any(isinstance(d, str) or (isinstance(d, int) and d < 0) for d in dims(v))


def static_survey(entry: dict, path: Path) -> dict:
    m = onnx.load(str(path))
    g = m.graph
    init = {i.name for i in g.initializer}
    ops = collections.Counter()
    sub_ops = collections.Counter()
    for node, depth in walk(g):
        ops[node.op_type] += 1
        if depth:
            sub_ops[node.op_type] += 1
    vis = list(value_infos(g))
    dt = lambda v: onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name  # noqa: E731
    return {
        "opset": {o.domain or "ai.onnx": o.version for o in m.opset_import},
        "ir_version": m.ir_version,
        "producer": f"{m.producer_name} {m.producer_version}".strip(),
        "nodes": sum(ops.values()),
        "nodes_in_subgraphs": sum(sub_ops.values()),
        "ops": dict(ops.most_common()),
        "initializers": len(g.initializer),
        "inputs": [{"name": i.name, "dtype": dt(i), "dims": dims(i)} for i in g.input if i.name not in init],
        "outputs": [{"name": o.name, "dtype": dt(o), "dims": dims(o)} for o in g.output],
        "value_info": len(vis),
        "value_info_symbolic": sum(is_symbolic(v) for v in vis),
        "io_symbolic": any(is_symbolic(v) for v in list(g.input) + list(g.output) if v.name not in init),
    }


def run_survey(entry: dict, path: Path, arrays: dict) -> dict:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # keep ORT's shape-mismatch warnings out of the report
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    n = len(arrays[entry["inputs"][0]["name"]])
    batch = entry["max_batch"] or 8
    outs: list[list[np.ndarray]] = []
    t0 = time.perf_counter()
    try:
        for s in range(0, n, batch):
            res = sess.run(None, make_data.feeds(entry, arrays, s, min(batch, n - s)))
            outs.append(res)
    except Exception as e:  # noqa: BLE001
        return {"ort": "FAIL", "error": str(e).splitlines()[0][:300]}
    ms = (time.perf_counter() - t0) * 1000 / n
    report = {"ort": "ok", "samples": n, "ms_per_sample": round(ms, 2), "run_outputs": []}
    names = [o.name for o in sess.get_outputs()]
    for k, name in enumerate(names):
        parts = [o[k] for o in outs]
        axis = 1 if entry["name"].startswith("ddddocr_ocr") else 0  # [T, 1, C]: batch on axis 1
        cat = np.concatenate(parts, axis=axis) if parts[0].ndim else np.stack(parts)
        report["run_outputs"].append({
            "name": name, "shape": list(parts[0].shape), "finite": bool(np.isfinite(cat).all()),
            "min": float(cat.min()), "max": float(cat.max()), "mean": float(cat.mean()),
        })
    if "labels" in arrays:
        logits = np.concatenate([o[0] for o in outs])
        report["accuracy"] = float((logits.argmax(-1) == arrays["labels"]).mean())
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--data", type=Path, help="directory with <name>/eval.npz (else generate)")
    ap.add_argument("--eval", type=int, default=64)
    ap.add_argument("--json", type=Path, help="also write the full survey as JSON")
    args = ap.parse_args()
    corpus = make_data.load_corpus()
    names = args.names or list(corpus)
    models = make_data.cache_dir() / "models"
    full = {}
    for name in names:
        entry = corpus[name]
        path = models / f"{name}.onnx"
        if not path.exists():
            print(f"survey: error: {path} is missing (run tests/oracle/corpus.py fetch)", file=sys.stderr)
            return 1
        info = static_survey(entry, path)
        if args.data:
            with np.load(args.data / name / "eval.npz") as z:
                arrays = {k: z[k] for k in z.files}
        else:
            arrays = make_data.generate(name, "eval", args.eval)
        info.update(run_survey(entry, path, arrays))
        full[name] = info
        print(f"== {name}  ({path.stat().st_size / 1e6:.1f} MB, opset {info['opset']}, {info['producer']})")
        print(f"   nodes {info['nodes']} ({info['nodes_in_subgraphs']} in subgraphs), initializers {info['initializers']}")
        print("   ops " + ", ".join(f"{k} {v}" for k, v in info["ops"].items()))
        for i in info["inputs"]:
            print(f"   in  {i['name']} {i['dtype']} {i['dims']}")
        for o in info["outputs"]:
            print(f"   out {o['name']} {o['dtype']} {o['dims']}")
        print(f"   value_info {info['value_info']} ({info['value_info_symbolic']} symbolic), symbolic graph I/O: {info['io_symbolic']}")
        if info["ort"] == "ok":
            acc = f", top-1 accuracy {info['accuracy']:.3f}" if "accuracy" in info else ""
            print(f"   onnxruntime: ok on {info['samples']} samples, {info['ms_per_sample']} ms/sample{acc}")
            for o in info["run_outputs"]:
                print(f"     {o['name']} {o['shape']} finite={o['finite']} range [{o['min']:.4g}, {o['max']:.4g}] mean {o['mean']:.4g}")
        else:
            print(f"   onnxruntime: FAIL: {info['error']}")
    if args.json:
        args.json.write_text(json.dumps(full, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
