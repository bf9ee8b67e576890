"""Oracle for the opset conversion (core/src/model/opset.rs): one small float model per operator
whose signature or meaning changed between opset 10 and 21, written in its old opset, and a
comparison of a converted model with its original in ONNX Runtime.

Usage:
  opset_cases.py make OUT_DIR          writes OUT_DIR/<case>.onnx, prints the case names (JSON)
  opset_cases.py compare OLD NEW       checks NEW with onnx.checker and strict shape inference
                                       and prints JSON {"opset", "max_abs_diff", "outputs"}: both
                                       models run in ONNX Runtime on the same random inputs
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def model(name, opset, nodes, x_shape, outputs, inits=()):
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", F, x_shape)],
        [helper.make_tensor_value_info(o, F, None) for o in outputs],
        initializer=list(inits),
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="opset_cases")
    m.ir_version = 7
    # Outputs typed by ONNX's own shape inference (the checker wants their shapes).
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(m, strict_mode=True).graph.output}
    for o in m.graph.output:
        o.type.CopyFrom(inferred[o.name].type)
    onnx.checker.check_model(m)
    return m


def const(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def cases():
    n = helper.make_node
    yield model("clip10", 10, [n("Clip", ["x"], ["y"], min=-0.5, max=0.7)], [1, 2, 5], ["y"])
    yield model("clip10_max_only", 10, [n("Clip", ["x"], ["y"], max=0.2)], [1, 2, 5], ["y"])
    yield model("pad10_constant", 10, [n("Pad", ["x"], ["y"], pads=[0, 0, 1, 2, 0, 0, 2, 1], value=1.5)],
                [1, 2, 3, 4], ["y"])
    yield model("pad10_reflect", 10, [n("Pad", ["x"], ["y"], mode="reflect", pads=[0, 0, 1, 1, 0, 0, 1, 2])],
                [1, 2, 3, 4], ["y"])
    yield model("resize10_nearest", 10, [n("Resize", ["x", "s"], ["y"], mode="nearest")], [1, 1, 3, 4], ["y"],
                [const("s", [1, 1, 2, 3])])
    yield model("resize10_nearest_down", 10, [n("Resize", ["x", "s"], ["y"], mode="nearest")], [1, 1, 6, 8], ["y"],
                [const("s", [1, 1, 0.5, 0.75])])
    yield model("resize10_linear", 10, [n("Resize", ["x", "s"], ["y"], mode="linear")], [1, 1, 3, 4], ["y"],
                [const("s", [1, 1, 2, 2])])
    yield model("scatter10", 10, [n("Scatter", ["x", "i", "u"], ["y"], axis=1)], [1, 3, 3], ["y"],
                [const("i", [[[1, 0, 2]]], np.int64), const("u", [[[9.0, 8.0, 7.0]]])])
    yield model("dropout11", 11, [n("Dropout", ["x"], ["y"], ratio=0.3)], [1, 2, 5], ["y"])
    yield model("split11", 11, [n("Split", ["x"], ["a", "b"], axis=2, split=[1, 3])], [1, 2, 4], ["a", "b"])
    yield model("split11_equal", 11, [n("Split", ["x"], ["a", "b"], axis=-1)], [1, 2, 4], ["a", "b"])
    yield model("squeeze11", 11, [n("Squeeze", ["x"], ["y"], axes=[1, -1])], [1, 1, 3, 1], ["y"])
    yield model("squeeze11_all", 11, [n("Squeeze", ["x"], ["y"])], [1, 1, 3, 1], ["y"])
    yield model("unsqueeze11", 11, [n("Unsqueeze", ["x"], ["y"], axes=[0, -1])], [1, 3], ["y"])
    yield model("reducesum12", 12, [n("ReduceSum", ["x"], ["y"], axes=[1, 2], keepdims=0)], [1, 3, 4, 2], ["y"])
    yield model("reducesum12_all", 12, [n("ReduceSum", ["x"], ["y"])], [1, 3, 4], ["y"])
    yield model("softmax12_inner_axis", 12, [n("Softmax", ["x"], ["y"], axis=2)], [1, 3, 4, 2], ["y"])
    yield model("softmax11_default_axis", 11, [n("Softmax", ["x"], ["y"])], [1, 3, 4], ["y"])
    yield model("softmax12_last_axis", 12, [n("Softmax", ["x"], ["y"], axis=-1)], [1, 3, 4], ["y"])
    yield model("logsoftmax11_axis0", 11, [n("LogSoftmax", ["x"], ["y"], axis=0)], [1, 3, 4], ["y"])
    yield model("hardmax12_axis1", 12, [n("Hardmax", ["x"], ["y"], axis=1)], [1, 3, 4], ["y"])
    # Opset 13 to 21.
    yield model("reducemean13", 13, [n("ReduceMean", ["x"], ["y"], axes=[1, -1], keepdims=1)], [1, 3, 4, 2], ["y"])
    yield model("reducemax13_all", 13, [n("ReduceMax", ["x"], ["y"], keepdims=0)], [1, 3, 4], ["y"])
    yield model("reducel2_13", 13, [n("ReduceL2", ["x"], ["y"], axes=[2])], [1, 3, 4], ["y"])
    yield model("reducelogsumexp13", 13, [n("ReduceLogSumExp", ["x"], ["y"], axes=[0, 1], keepdims=0)], [2, 3, 4],
                ["y"])
    yield model("split13_equal", 13, [n("Split", ["x"], ["a", "b", "c"], axis=1)], [1, 6, 2], ["a", "b", "c"])
    yield model("gridsample16_bilinear", 16, [n("GridSample", ["x", "g"], ["y"], mode="bilinear")], [1, 2, 4, 5],
                ["y"], [const("g", np.linspace(-1.1, 1.1, 1 * 3 * 3 * 2).reshape(1, 3, 3, 2))])
    yield model("roialign13", 13, [n("RoiAlign", ["x", "r", "b"], ["y"], output_height=2, output_width=2,
                                     sampling_ratio=2)], [1, 2, 6, 6], ["y"],
                [const("r", [[0.5, 1.0, 4.0, 5.5], [0.0, 0.0, 3.0, 2.0]]), const("b", [0, 0], np.int64)])
    # A chain, as exporters write it: Unsqueeze → Softmax on an inner axis → Squeeze, at opset 11.
    yield model("chain11", 11, [
        n("Unsqueeze", ["x"], ["u"], axes=[1]),
        n("Softmax", ["u"], ["s"], axis=2),
        n("Squeeze", ["s"], ["y"], axes=[1]),
    ], [1, 3, 4], ["y"])


def run(path, feeds):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return [o.name for o in sess.get_outputs()], sess.run(None, feeds)


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        out = sys.argv[2]
        names = []
        for m in cases():
            onnx.save(m, os.path.join(out, m.graph.name + ".onnx"))
            names.append(m.graph.name)
        print(json.dumps(names))
    elif cmd == "compare":
        old, new = sys.argv[2:4]
        converted = onnx.load(new)
        onnx.checker.check_model(converted)
        onnx.shape_inference.infer_shapes(converted, check_type=True, strict_mode=True)
        shape = [d.dim_value for d in converted.graph.input[0].type.tensor_type.shape.dim]
        rng = np.random.default_rng(0)
        feeds = {"x": rng.normal(size=shape).astype(np.float32)}
        names_old, a = run(old, feeds)
        names_new, b = run(new, feeds)
        assert names_old == names_new, (names_old, names_new)
        diff = max(float(np.max(np.abs(x - y))) if x.size else 0.0 for x, y in zip(a, b))
        same_shapes = all(x.shape == y.shape for x, y in zip(a, b))
        opset = next(o.version for o in converted.opset_import if o.domain in ("", "ai.onnx"))
        print(json.dumps({"opset": opset, "max_abs_diff": diff if same_shapes else None, "outputs": len(a)}))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
