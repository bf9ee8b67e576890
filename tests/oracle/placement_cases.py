"""Oracle cases for the `ort` placement (core/src/plan/placement.rs): one small float model per
handler of ONNX Runtime's QDQ registry (layers around the op under test, so that its inputs and
outputs are activations), each with calibration and evaluation data. The test quantizes each with
ONNX Runtime's quantize_static and with QuantBench and compares which tensors both quantize
(qdq_compare.py), then checks that QuantBench's export runs in ORT as its simulation predicts.

Usage: placement_cases.py OUT_DIR   writes OUT_DIR/<case>/{model.onnx,calib.npz,eval.npz} and
prints the case names (JSON)
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
RNG = np.random.default_rng(7)
n = helper.make_node


def const(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def weight(name, shape, scale=0.3):
    return const(name, RNG.normal(0, scale, shape))


def conv(name, x, cin, cout, k=3, group=1, pad=1):
    w = weight(f"{name}_w", [cout, cin // group, k, k])
    b = weight(f"{name}_b", [cout], 0.1)
    node = n("Conv", [x, w.name, b.name], [f"{name}_out"], name=name, pads=[pad] * 4, group=group)
    return node, [w, b]


def matmul(name, x, k, m):
    w = weight(f"{name}_w", [k, m])
    b = weight(f"{name}_b", [m], 0.1)
    return [n("MatMul", [x, w.name], [f"{name}_mm"], name=name),
            n("Add", [f"{name}_mm", b.name], [f"{name}_out"], name=f"{name}_bias")], [w, b]


def model(nodes, inits, x_shape, out, opset=13):
    graph = helper.make_graph(nodes, "case", [helper.make_tensor_value_info("x", F, ["N", *x_shape[1:]])],
                              [helper.make_tensor_value_info(out, F, None)], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="placement_cases")
    m.ir_version = 8
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    onnx.checker.check_model(m)
    return m, x_shape


def cnn_case(body):
    """Conv → body(t) → Conv → GlobalAveragePool → Flatten → Gemm, input 1×4×8×8."""
    c1, i1 = conv("conv_in", "x", 4, 8)
    nodes, inits, t, ch = body("conv_in_out", 8)
    c2, i2 = conv("conv_out", t, ch, 8)
    w = weight("fc_w", [8, 5])
    tail = [n("GlobalAveragePool", ["conv_out_out"], ["gap"], name="gap"),
            n("Flatten", ["gap"], ["flat"], name="flatten"),
            n("Gemm", ["flat", "fc_w"], ["y"], name="fc")]
    return model([c1, *nodes, c2, *tail], [*i1, *inits, *i2, w], [1, 4, 8, 8], "y")


def relu_maxpool(t, ch):
    return [n("Relu", [t], ["relu"], name="relu"),
            n("MaxPool", ["relu"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2])], [], "pool", ch


def clip_avgpool(t, ch):
    lo, hi = const("lo", 0.0), const("hi", 6.0)
    return [n("Clip", [t, "lo", "hi"], ["clip"], name="clip"),
            n("AveragePool", ["clip"], ["pool"], name="pool", kernel_shape=[3, 3], pads=[1, 1, 1, 1])], [lo, hi], "pool", ch


def residual(t, ch):
    c, i = conv("conv_mid", t, ch, ch)
    return [c, n("Add", [t, "conv_mid_out"], ["sum"], name="residual"),
            n("Relu", ["sum"], ["act"], name="relu")], i, "act", ch


def concat_resize(t, ch):
    a, ia = conv("branch_a", t, ch, 4)
    b, ib = conv("branch_b", t, ch, 4, k=1, pad=0)
    scales = const("scales", [1, 1, 2, 2])
    return [a, b, n("Concat", ["branch_a_out", "branch_b_out"], ["cat"], name="concat", axis=1),
            n("Resize", ["cat", "", "scales"], ["up"], name="resize", mode="nearest")], [*ia, *ib, scales], "up", 8


def split_mul_sigmoid(t, ch):
    return [n("Split", [t], ["s0", "s1"], name="split", axis=1),
            n("Sigmoid", ["s1"], ["gate"], name="sigmoid"),
            n("Mul", ["s0", "gate"], ["gated"], name="gate_mul"),
            n("LeakyRelu", ["gated"], ["leaky"], name="leaky", alpha=0.1)], [], "leaky", ch // 2


def pads(t, ch):
    return [n("Pad", [t, "p"], ["reflected"], name="pad_reflect", mode="reflect"),
            n("Pad", ["reflected", "p", "v"], ["padded"], name="pad_const"),
            n("Slice", ["padded", "starts", "ends", "axes"], ["sliced"], name="slice")], [
        const("p", [0, 0, 1, 1, 0, 0, 1, 1], np.int64), const("v", 0.5),
        const("starts", [1, 1], np.int64), const("ends", [11, 11], np.int64), const("axes", [2, 3], np.int64)], "sliced", ch


def norms(t, ch):
    scale, bias = weight("bn_s", [ch], 0.2), weight("bn_b", [ch], 0.1)
    mean, var = weight("bn_m", [ch], 0.1), const("bn_v", np.full(ch, 0.8))
    s2, b2 = weight("in_s", [ch], 0.2), weight("in_b", [ch], 0.1)
    return [n("BatchNormalization", [t, "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"], name="bn"),
            n("InstanceNormalization", ["bn", "in_s", "in_b"], ["inorm"], name="inorm")], [scale, bias, mean, var, s2, b2], "inorm", ch


def attention():
    """A one-head attention block on 1×6×16 tokens: projections, act × act MatMuls, Softmax,
    LayerNormalization, Reshape/Transpose/Gather/Unsqueeze/Squeeze, a constant Mul."""
    nodes, inits = [], []
    for p in "qkv":
        nd, i = matmul(p, "x", 16, 16)
        nodes += nd
        inits += i
    inits += [const("shape", [0, 6, 2, 8], np.int64), const("back", [0, 6, 16], np.int64),
              const("temp", np.float32(0.35)), const("idx", 0, np.int64), const("ax1", [1], np.int64),
              const("ln_s", RNG.normal(1, 0.1, 16)), const("ln_b", RNG.normal(0, 0.1, 16))]
    nodes += [
        n("Reshape", ["q_out", "shape"], ["q4"], name="q_reshape"),
        n("Transpose", ["q4"], ["qh"], name="q_t", perm=[0, 2, 1, 3]),
        n("Reshape", ["k_out", "shape"], ["k4"], name="k_reshape"),
        n("Transpose", ["k4"], ["kh"], name="k_t", perm=[0, 2, 3, 1]),
        n("Reshape", ["v_out", "shape"], ["v4"], name="v_reshape"),
        n("Transpose", ["v4"], ["vh"], name="v_t", perm=[0, 2, 1, 3]),
        n("MatMul", ["qh", "kh"], ["scores_raw"], name="scores"),
        n("Mul", ["scores_raw", "temp"], ["scores"], name="temperature"),
        n("Softmax", ["scores"], ["probs"], name="softmax", axis=-1),
        n("MatMul", ["probs", "vh"], ["ctx"], name="context"),
        n("Transpose", ["ctx"], ["ctx_t"], name="ctx_t", perm=[0, 2, 1, 3]),
        n("Reshape", ["ctx_t", "back"], ["ctx_flat"], name="ctx_reshape"),
        n("Add", ["ctx_flat", "x"], ["res"], name="residual"),
        n("LayerNormalization", ["res", "ln_s", "ln_b"], ["ln"], name="ln", axis=-1),
        n("Gather", ["ln", "idx"], ["first"], name="first_token", axis=1),
        n("Unsqueeze", ["first", "ax1"], ["first3d"], name="unsqueeze"),
        n("Squeeze", ["first3d", "ax1"], ["first2d"], name="squeeze"),
    ]
    nd, i = matmul("head", "first2d", 16, 5)
    nodes += nd
    inits += i
    nodes[-1].output[0] = "y"
    return model(nodes, inits, [1, 6, 16], "y", opset=17)


CASES = {
    "relu_maxpool": lambda: cnn_case(relu_maxpool),
    "clip_avgpool": lambda: cnn_case(clip_avgpool),
    "residual_add": lambda: cnn_case(residual),
    "concat_resize": lambda: cnn_case(concat_resize),
    "split_sigmoid_mul_leakyrelu": lambda: cnn_case(split_mul_sigmoid),
    "pad_slice": lambda: cnn_case(pads),
    "normalizations": lambda: cnn_case(norms),
    "attention": attention,
}


def main():
    out = sys.argv[1]
    for name, make in CASES.items():
        m, shape = make()
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        onnx.save(m, os.path.join(d, "model.onnx"))
        for split, count in (("calib", 16), ("eval", 48)):
            x = RNG.normal(0, 1, [count, *shape[1:]]).astype(np.float32)
            np.savez(os.path.join(d, f"{split}.npz"), x=x)
    print(json.dumps(list(CASES)))


if __name__ == "__main__":
    main()
