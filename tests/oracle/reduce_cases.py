"""Oracle for ONNX Runtime's float summation order and division (core/src/model/ort_reduce.rs,
exact_div.rs): small models with ReduceSum / ReduceMean over trailing axes (rows whose length
is and is not a multiple of four, several reduced axes, fewer values than a packet, opsets 11
and 13, keepdims on and off), a LayerNorm written out as basic ops (the variance
E[x^2] - E[x]^2, as magika's), an unfused BatchNormalization, an InstanceNormalization (rows of 45, not a
multiple of four), a hardswish dividing by 6 and a division by a computed,
broadcast tensor, on data whose sums cancel. ORT runs each with graph optimisations off (as its calibrator does) and on;
both outputs are written for the test to compare bit for bit with tract's.

Usage: reduce_cases.py OUT_DIR    writes OUT_DIR/<case>.onnx, <case>.npz (input `x`),
                                  <case>.ort.npz (each output, optimisations off) and
                                  <case>.ort_opt.npz (on); prints the case names (JSON)
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opset_cases  # noqa: E402


def model(name, opset, nodes, x_shape, outputs, inits=()):
    """The case `name` as (name, checked model with typed outputs, input shape)."""
    return name, opset_cases.model(name, opset, nodes, x_shape, outputs, inits), x_shape


def axes(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def cases():
    n = helper.make_node
    yield model("sum13_rows37", 13, [n("ReduceSum", ["x", "ax"], ["y"], keepdims=1)], [4, 37], ["y"], [axes("ax", [1])])
    yield model("sum13_last_nokeep", 13, [n("ReduceSum", ["x", "ax"], ["y"], keepdims=0)], [3, 5, 10], ["y"],
                [axes("ax", [-1])])
    yield model("sum13_two_axes", 13, [n("ReduceSum", ["x", "ax"], ["y"])], [2, 6, 21], ["y"], [axes("ax", [1, 2])])
    yield model("sum11_tiny", 11, [n("ReduceSum", ["x"], ["y"], axes=[2])], [2, 2, 3], ["y"])
    yield model("sum11_all", 11, [n("ReduceSum", ["x"], ["y"], keepdims=0)], [1, 3, 67], ["y"])
    yield model("mean11_rows512", 11, [n("ReduceMean", ["x"], ["y"], axes=[-1])], [5, 7, 512], ["y"])
    yield model("mean13_rows9", 13, [n("ReduceMean", ["x"], ["y"], axes=[2], keepdims=0)], [2, 3, 9], ["y"])
    c6 = numpy_helper.from_array(np.array(6.0, dtype=np.float32), "six")
    c3 = numpy_helper.from_array(np.array(3.0, dtype=np.float32), "three")
    c0 = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    yield model("hardswish_div6", 11, [
        n("Add", ["x", "three"], ["x3"]), n("Clip", ["x3", "zero", "six"], ["r6"]),
        n("Mul", ["x", "r6"], ["xr"]), n("Div", ["xr", "six"], ["y"]),
    ], [2, 8, 37], ["y"], [c6, c3, c0])
    yield model("div_by_row_sums", 13, [
        n("ReduceSum", ["x", "ax"], ["s"], keepdims=1), n("Div", ["x", "s"], ["y"]), n("Div", ["s", "x"], ["z"]),
    ], [6, 50], ["y", "z"], [axes("ax", [1])])
    r = np.random.default_rng(3)
    stats = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in (
        ("bn_scale", r.uniform(0.2, 3, 24)), ("bn_bias", r.normal(0, 2, 24)), ("bn_mean", r.normal(20, 5, 24)),
        ("bn_var", r.uniform(0.01, 9, 24)))]
    yield model("batchnorm_unfused", 11, [n("BatchNormalization", ["x", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
                                            ["y"], epsilon=1e-3)], [2, 24, 9, 7], ["y"], stats)
    s_in = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in (
        ("in_scale", r.uniform(0.2, 3, 6)), ("in_bias", r.normal(0, 2, 6)))]
    yield model("instancenorm_rows45", 13, [n("InstanceNormalization", ["x", "in_scale", "in_bias"], ["y"],
                                              epsilon=1e-4)], [2, 6, 5, 9], ["y"], s_in)
    # A LayerNorm as basic ops (jax2tf's, magika's): E[x^2] - E[x]^2 under cancellation.
    c = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.float32), name)  # noqa: E731
    yield model("layernorm_basic_ops", 13, [
        n("ReduceSum", ["x", "ax"], ["s"], keepdims=0),
        n("Mul", ["s", "inv_n"], ["mean"]),
        n("Mul", ["mean", "mean"], ["mean2"]),
        n("Mul", ["x", "x"], ["sq"]),
        n("ReduceSum", ["sq", "ax"], ["s2"], keepdims=0),
        n("Mul", ["s2", "inv_n"], ["ex2"]),
        n("Sub", ["ex2", "mean2"], ["var"]),
        n("Max", ["zero", "var"], ["varp"]),
        n("Add", ["varp", "eps"], ["vare"]),
        n("Sqrt", ["vare"], ["std"]),
        n("Reciprocal", ["std"], ["inv"]),
        n("Unsqueeze", ["mean", "ax"], ["mean_u"]),
        n("Unsqueeze", ["inv", "ax"], ["inv_u"]),
        n("Sub", ["x", "mean_u"], ["centred"]),
        n("Mul", ["centred", "inv_u"], ["y"]),
    ], [3, 512], ["y", "var"], [axes("ax", [1]), c("inv_n", 1 / 512), c("zero", 0.0), c("eps", 1e-6)])


def run(path, x, level):
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"x": x})))


def main():
    out = sys.argv[1]
    names = []
    rng = np.random.default_rng(7)
    for name, m, shape in cases():
        path = os.path.join(out, f"{name}.onnx")
        onnx.save(m, path)
        # A large common offset and small spread: the sums cancel, their order shows.
        x = (rng.uniform(10, 30) + rng.standard_normal(shape) * rng.uniform(0.01, 3)).astype(np.float32)
        np.savez(os.path.join(out, f"{name}.npz"), x=x)
        np.savez(os.path.join(out, f"{name}.ort.npz"), **run(path, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL))
        np.savez(os.path.join(out, f"{name}.ort_opt.npz"), **run(path, x, ort.GraphOptimizationLevel.ORT_ENABLE_ALL))
        names.append(name)
    print(json.dumps(names))


if __name__ == "__main__":
    main()
