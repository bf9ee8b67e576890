# A 128-layer conv stack (plus a Gemm head), 1x3x32x32 input, with noise calibration and
# evaluation sets: the 100+ layer model of the GUI frame-time figure in BENCHMARKS.md.
# Usage (the test venv has numpy and onnx): python scripts/make_deep_model.py DIR
import os
import sys

import numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper
out = sys.argv[1] if len(sys.argv) > 1 else "."
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
nodes, inits = [], []
x = "input"; c_in = 3; C = 16
for i in range(128):
    w = (rng.standard_normal((C, c_in, 3, 3)) * np.sqrt(2.0 / (c_in * 9))).astype(np.float32)
    b = np.zeros(C, np.float32)
    inits += [numpy_helper.from_array(w, f"conv{i}.weight"), numpy_helper.from_array(b, f"conv{i}.bias")]
    nodes.append(helper.make_node("Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [f"conv{i}_out"], name=f"conv{i}", pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", [f"conv{i}_out"], [f"relu{i}"], name=f"relu{i}"))
    if i > 0 and c_in == C:
        nodes.append(helper.make_node("Add", [f"relu{i}", x], [f"res{i}"], name=f"add{i}"))
        x = f"res{i}"
    else:
        x = f"relu{i}"
    c_in = C
nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"))
wf = (rng.standard_normal((10, C)) * 0.3).astype(np.float32)
inits += [numpy_helper.from_array(wf, "fc.weight"), numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias")]
nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))
g = helper.make_graph(nodes, "deep128", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="quantbench frame-time check")
onnx.checker.check_model(m)
onnx.save(m, f"{out}/deep128.onnx")
np.savez(f"{out}/calib.npz", input=rng.standard_normal((64, 3, 32, 32)).astype(np.float32))
np.savez(f"{out}/eval.npz", input=rng.standard_normal((256, 3, 32, 32)).astype(np.float32))
print("ok")
