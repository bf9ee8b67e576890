"""Oracle: small float models shaped like real-world ONNX exports (old opsets, unfused
BatchNormalization, HardSigmoid-based hardswish, Clip with Constant-node bounds, Resize,
ConvTranspose, symbolic dims, weights in Constant nodes, several inputs and outputs), with input
samples and ONNX Runtime's outputs for them.

Usage: make_realworld.py OUT_DIR

For every model NAME it writes into OUT_DIR:
  NAME.onnx      the model (checked with onnx.checker, full_check=True)
  NAME.npz       float32 input samples keyed by input name, first axis = samples
  NAME.ort.npz   ONNX Runtime's outputs keyed by output name, first axis = samples (run sample by
                 sample with batch 1 and stacked when the batch dim is fixed, as one batch when
                 it is symbolic)
and prints the model names, one a line. Everything is deterministic (fixed seeds).
"""
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

NUM_SAMPLES = 32
# The IR version each exporter of that era wrote for the opset.
IR_VERSION = {11: 6, 12: 7, 13: 7, 14: 8, 17: 8}


class Builder:
    """Collects nodes and constants of one graph; weights are drawn from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def weight(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return (self.rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    def bias(self, n: int) -> np.ndarray:
        return (0.1 * self.rng.standard_normal(n)).astype(np.float32)

    def init(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        """A `Constant` node producing `name` (PaddlePaddle and some PyTorch exports do this)."""
        self.nodes.append(
            helper.make_node("Constant", [], [name], name=f"{name}_const", value=numpy_helper.from_array(value, name))
        )
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs[0]

    def conv(self, x: str, name: str, cin: int, cout: int, k: int, *, const: bool = False, **attrs) -> str:
        w = self.weight((cout, cin, k, k), cin * k * k)
        b = self.bias(cout)
        put = self.const if const else self.init
        return self.node("Conv", [x, put(f"{name}.weight", w), put(f"{name}.bias", b)], [f"{name}_out"], name, **attrs)

    def model(self, name, inputs, outputs, opset, keep_initializers_as_inputs=False) -> onnx.ModelProto:
        graph_inputs = list(inputs)
        if keep_initializers_as_inputs:
            # Old PyTorch exports (keep_initializers_as_inputs=True) also list weights as inputs.
            graph_inputs += [
                helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in self.initializers
            ]
        graph = helper.make_graph(self.nodes, name, graph_inputs, outputs, initializer=self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", opset)],
            ir_version=IR_VERSION[opset],
            producer_name="quantbench-realworld",
            producer_version="1",
        )
        onnx.checker.check_model(model, full_check=True)
        return model


def f32(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def bn_hardswish_opset11() -> onnx.ModelProto:
    """Old PyTorch export: unfused BatchNormalization, hardswish as x * HardSigmoid(x)."""
    b = Builder(11)
    x = b.conv("input", "conv1", 3, 8, 3, pads=[1, 1, 1, 1])
    scale = b.init("bn1.weight", (1.0 + 0.2 * b.rng.standard_normal(8)).astype(np.float32))
    shift = b.init("bn1.bias", b.bias(8))
    mean = b.init("bn1.running_mean", (0.3 * b.rng.standard_normal(8)).astype(np.float32))
    var = b.init("bn1.running_var", b.rng.uniform(0.5, 1.5, 8).astype(np.float32))
    x = b.node("BatchNormalization", [x, scale, shift, mean, var], ["bn1_out"], "bn1", epsilon=1e-5, momentum=0.9)
    hs = b.node("HardSigmoid", [x], ["hsig1_out"], "hsig1", alpha=1.0 / 6.0, beta=0.5)
    x = b.node("Mul", [x, hs], ["hswish1_out"], "hswish1")
    x = b.conv(x, "conv2", 8, 16, 3, strides=[2, 2], pads=[1, 1, 1, 1])
    x = b.node("Relu", [x], ["relu2_out"], "relu2")
    x = b.node("GlobalAveragePool", [x], ["gap_out"], "gap")
    x = b.node("Flatten", [x], ["flat_out"], "flatten", axis=1)
    w = b.init("fc.weight", b.weight((10, 16), 16))
    b.node("Gemm", [x, w, b.init("fc.bias", b.bias(10))], ["output"], "fc", alpha=1.0, beta=1.0, transB=1)
    return b.model(
        "bn_hardswish_opset11",
        [f32("input", [1, 3, 16, 16])],
        [f32("output", [1, 10])],
        11,
        keep_initializers_as_inputs=True,
    )


def hardswish_opset14() -> onnx.ModelProto:
    b = Builder(14)
    x = b.conv("input", "conv1", 3, 8, 3, pads=[1, 1, 1, 1])
    x = b.node("HardSwish", [x], ["hswish1_out"], "hswish1")
    x = b.conv(x, "conv2", 8, 8, 3, strides=[2, 2], pads=[1, 1, 1, 1])
    x = b.node("HardSigmoid", [x], ["hsig2_out"], "hsig2")
    b.node("GlobalAveragePool", [x], ["output"], "gap")
    return b.model("hardswish_opset14", [f32("input", ["N", 3, 16, 16])], [f32("output", ["N", 8, 1, 1])], 14)


def clip_resize_convtranspose_opset13() -> onnx.ModelProto:
    b = Builder(13)
    x = b.conv("input", "conv1", 3, 8, 3, pads=[1, 1, 1, 1])
    lo = b.const("relu6_min", np.array(0.0, dtype=np.float32))
    hi = b.const("relu6_max", np.array(6.0, dtype=np.float32))
    x = b.node("Clip", [x, lo, hi], ["relu6_out"], "relu6")
    scales = b.const("up_scales", np.array([1.0, 1.0, 2.0, 2.0], dtype=np.float32))
    x = b.node(
        "Resize",
        [x, "", scales],
        ["up_out"],
        "up",
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    # PyTorch ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1): 16 -> 32.
    w = b.init("deconv.weight", b.weight((8, 4, 3, 3), 8 * 9))
    x = b.node(
        "ConvTranspose",
        [x, w, b.init("deconv.bias", b.bias(4))],
        ["deconv_out"],
        "deconv",
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        output_padding=[1, 1],
    )
    b.node("Relu", [x], ["output"], "relu_out")
    return b.model(
        "clip_resize_convtranspose_opset13",
        [f32("input", [1, 3, 8, 8])],
        [f32("output", [1, 4, 32, 32])],
        13,
    )


def dynamic_dims_opset17() -> onnx.ModelProto:
    b = Builder(17)
    main = b.conv("input", "conv_main", 3, 8, 3, pads=[1, 1, 1, 1])
    main = b.node("Relu", [main], ["relu_main_out"], "relu_main")
    skip = b.conv("input", "conv_skip", 3, 8, 1)
    res = b.node("Add", [main, skip], ["residual_out"], "residual")
    branch = b.conv("input", "conv_branch", 3, 8, 3, auto_pad="SAME_UPPER")
    branch = b.node("Sigmoid", [branch], ["sigmoid_branch_out"], "sigmoid_branch")
    cat = b.node("Concat", [res, branch], ["cat_out"], "cat", axis=1)
    split = b.init("split_sizes", np.array([8, 8], dtype=np.int64))
    b.node("Split", [cat, split], ["split_a", "split_b"], "split", axis=1)
    x = b.node("Add", ["split_a", "split_b"], ["merge_out"], "merge")
    x = b.conv(x, "conv_head", 8, 4, 3, pads=[1, 1, 1, 1])
    b.node("Identity", [x], ["output"], "out")
    return b.model(
        "dynamic_dims_opset17",
        [f32("input", ["batch", 3, "height", "width"])],
        [f32("output", ["batch", 4, "height", "width"])],
        17,
    )


def constant_weights_opset12() -> onnx.ModelProto:
    """PaddlePaddle style: every weight is a `Constant` node, the batch dim has an odd name."""
    b = Builder(12)
    x = b.conv("input", "conv1", 3, 4, 3, const=True, strides=[2, 2], pads=[1, 1, 1, 1])
    x = b.node("Relu", [x], ["relu1_out"], "relu1")
    shape = b.const("flat_shape", np.array([0, -1], dtype=np.int64))
    x = b.node("Reshape", [x, shape], ["flat_out"], "flatten")
    x = b.node("MatMul", [x, b.const("fc1.weight", b.weight((64, 16), 64))], ["fc1_mm"], "fc1")
    x = b.node("Add", [x, b.const("fc1.bias", b.bias(16))], ["fc1_out"], "fc1_add")
    x = b.node("Relu", [x], ["relu2_out"], "relu2")
    w = b.const("fc2.weight", b.weight((16, 5), 16))
    b.node("Gemm", [x, w, b.const("fc2.bias", b.bias(5))], ["output"], "fc2")
    return b.model(
        "constant_weights_opset12",
        [f32("input", ["p2o.DynamicDimension.0", 3, 8, 8])],
        [f32("output", ["p2o.DynamicDimension.0", 5])],
        12,
    )


def two_inputs_two_outputs_opset13() -> onnx.ModelProto:
    b = Builder(1313)
    x = b.conv("image", "conv1", 1, 4, 3, strides=[2, 2], pads=[1, 1, 1, 1])
    x = b.node("Relu", [x], ["relu1_out"], "relu1")
    x = b.node("Flatten", [x], ["flat_out"], "flatten", axis=1)
    b.node("Concat", [x, "meta"], ["embedding"], "cat", axis=1)
    w = b.init("head.weight", b.weight((3, 68), 68))
    b.node("Gemm", ["embedding", w, b.init("head.bias", b.bias(3))], ["logits"], "head", transB=1)
    return b.model(
        "two_inputs_two_outputs_opset13",
        [f32("image", ["batch", 1, 8, 8]), f32("meta", ["batch", 4])],
        [f32("logits", ["batch", 3]), f32("embedding", ["batch", 68])],
        13,
    )


def classifier_opset11() -> onnx.ModelProto:
    """A MobileNet-style classifier as PyTorch 1.x exported it at opset 11: Split/Concat of the
    channels, depthwise Conv, Clip(0, 6), GlobalAveragePool → Squeeze(axes) → Gemm → Softmax(axis
    1), so per-channel export must convert Split, Squeeze and Softmax to opset 13."""
    b = Builder(1111)
    x = b.conv("input", "conv1", 3, 8, 3, pads=[1, 1, 1, 1])
    b.node("Split", [x], ["half_a", "half_b"], "split", axis=1, split=[4, 4])
    x = b.node("Concat", ["half_b", "half_a"], ["swapped"], "concat", axis=1)
    x = b.conv(x, "conv2", 1, 8, 3, pads=[1, 1, 1, 1], group=8)
    lo = b.init("clip.min", np.array(0.0, dtype=np.float32))
    hi = b.init("clip.max", np.array(6.0, dtype=np.float32))
    x = b.node("Clip", [x, lo, hi], ["relu6_out"], "relu6")
    x = b.node("GlobalAveragePool", [x], ["gap_out"], "gap")
    x = b.node("Squeeze", [x], ["squeezed"], "squeeze", axes=[2, 3])
    w = b.init("fc.weight", b.weight((10, 8), 8))
    x = b.node("Gemm", [x, w, b.init("fc.bias", b.bias(10))], ["logits"], "fc", transB=1)
    b.node("Softmax", [x], ["prob"], "softmax", axis=1)
    return b.model("classifier_opset11", [f32("input", [1, 3, 16, 16])], [f32("prob", [1, 10])], 11)


def tokens_if_opset13() -> onnx.ModelProto:
    """A token model as tracing exporters write it: int64 token ids through an embedding Gather,
    an `If` on a constant (`if self.training:` traced), and `value_info` whose symbolic dims do
    not match the input's (the batch called `N` inside, `batch` outside)."""
    b = Builder(1313 + 1)
    table = b.init("embed.weight", b.weight((32, 16), 1))
    x = b.node("Gather", [table, "tokens"], ["embedded"], "embed", axis=0)
    w = b.init("proj.weight", b.weight((16, 16), 16))
    x = b.node("MatMul", [x, w], ["proj_mm"], "proj")
    x = b.node("Add", [x, b.init("proj.bias", b.bias(16))], ["proj_out"], "proj_bias")
    x = b.node("Relu", [x], ["relu_out"], "relu")
    x = b.node("ReduceMean", [x], ["pooled"], "pool", axes=[1], keepdims=0)
    b.const("training", np.array(False))
    half = numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")
    then_branch = helper.make_graph(
        [helper.make_node("Mul", ["pooled", "half"], ["dropped"], name="drop")], "train", [],
        [f32("dropped", ["batch", 16])], initializer=[half])
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["pooled"], ["kept"], name="keep")], "eval", [], [f32("kept", ["batch", 16])])
    b.nodes.append(helper.make_node("If", ["training"], ["features"], name="if_training",
                                    then_branch=then_branch, else_branch=else_branch))
    w = b.init("head.weight", b.weight((4, 16), 16))
    b.node("Gemm", ["features", w, b.init("head.bias", b.bias(4))], ["logits"], "head", transB=1)
    model = b.model("tokens_if_opset13", [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", 8])],
                    [f32("logits", ["batch", 4])], 13)
    model.graph.value_info.extend([f32("embedded", ["N", 8, 16]), f32("proj_out", ["N", 8, 16])])
    onnx.checker.check_model(model, full_check=True)
    return model


MODELS = [
    bn_hardswish_opset11,
    hardswish_opset14,
    clip_resize_convtranspose_opset13,
    dynamic_dims_opset17,
    constant_weights_opset12,
    two_inputs_two_outputs_opset13,
    classifier_opset11,
    tokens_if_opset13,
]

# Concrete per-sample shapes for inputs whose non-batch dims are symbolic.
CONCRETE = {("dynamic_dims_opset17", "input"): [3, 12, 12]}


def sample_inputs(model: onnx.ModelProto, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feeds = {}
    for inp in model.graph.input:
        if any(t.name == inp.name for t in model.graph.initializer):
            continue
        dims = inp.type.tensor_type.shape.dim
        shape = CONCRETE.get((model.graph.name, inp.name)) or [d.dim_value for d in dims[1:]]
        if inp.type.tensor_type.elem_type == TensorProto.INT64:
            feeds[inp.name] = rng.integers(0, 32, [NUM_SAMPLES, *shape]).astype(np.int64)  # token ids
        else:
            feeds[inp.name] = rng.standard_normal([NUM_SAMPLES, *shape]).astype(np.float32)
    return feeds


def batch_is_symbolic(model: onnx.ModelProto, names: list[str]) -> bool:
    inputs = {i.name: i for i in model.graph.input}
    return all(inputs[n].type.tensor_type.shape.dim[0].HasField("dim_param") for n in names)


def main() -> None:
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    for make in MODELS:
        model = make()
        name = model.graph.name
        path = out_dir / f"{name}.onnx"
        onnx.save(model, path)
        feeds = sample_inputs(model, rng)
        np.savez(out_dir / f"{name}.npz", **feeds)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # no warning per initializer listed as a graph input
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        assert sorted(names) == sorted(feeds), (name, names, list(feeds))
        out_names = [o.name for o in sess.get_outputs()]
        if batch_is_symbolic(model, names):
            results = sess.run(out_names, feeds)
        else:
            per_sample = [sess.run(out_names, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(NUM_SAMPLES)]
            results = [np.concatenate([s[j] for s in per_sample], axis=0) for j in range(len(out_names))]
        np.savez(out_dir / f"{name}.ort.npz", **{n: r.astype(np.float32) for n, r in zip(out_names, results)})
        print(name)


if __name__ == "__main__":
    main()
