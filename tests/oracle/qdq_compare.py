"""Compares the activation quantization of two QDQ exports (e.g. ONNX Runtime's quantize_static
and QuantBench's): which float tensors feed a QuantizeLinear, with what scale and zero point, and
which ops ONNX Runtime runs after its graph optimisations (QLinear* vs float).

Usage: qdq_compare.py REFERENCE.onnx OURS.onnx
Prints JSON: {"reference": N, "ours": N, "common": N, "same_qparams": N, "missing": [...],
"extra": [...], "differ": [...], "ops": {"reference": {...}, "ours": {...}}}
"""
import collections
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def activation_qparams(path):
    m = onnx.load(path)
    consts = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    out = {}
    for n in m.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] not in consts:
            scale = consts.get(n.input[1])
            zp = consts.get(n.input[2]) if len(n.input) > 2 else np.array(0)
            out[n.input[0]] = (float(np.asarray(scale).reshape(-1)[0]), int(np.asarray(zp).reshape(-1)[0]))
    return out


def optimized_ops(path):
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
        ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        m = onnx.load(opts.optimized_model_filepath)
    return dict(collections.Counter(n.op_type for n in m.graph.node))


def main():
    ref_path, ours_path = sys.argv[1:3]
    ref, ours = activation_qparams(ref_path), activation_qparams(ours_path)
    common = sorted(set(ref) & set(ours))
    differ = [t for t in common if not (np.isclose(ref[t][0], ours[t][0], rtol=1e-6) and ref[t][1] == ours[t][1])]
    print(json.dumps({
        "reference": len(ref), "ours": len(ours), "common": len(common), "same_qparams": len(common) - len(differ),
        "missing": sorted(set(ref) - set(ours)), "extra": sorted(set(ours) - set(ref)),
        "differ": [(t, ref[t], ours[t]) for t in differ],
        "ops": {"reference": optimized_ops(ref_path), "ours": optimized_ops(ours_path)},
    }, indent=1))


if __name__ == "__main__":
    main()
