#!/usr/bin/env python3
"""Check the bundled sample models with ONNX Runtime and print the README's accuracy table.

For every model folder next to this script:
  * onnx.checker.check_model (full_check) must pass;
  * float accuracy on eval.npz with onnxruntime;
  * for information: onnxruntime.quantization.quantize_static (QDQ format, MinMax calibration on
    calib.npz, int8 symmetric weights (QInt8), uint8 activations (QUInt8)) with per-channel and
    with per-tensor weights, and the accuracy of each quantized model on eval.npz.

Run:  python sample_models/check_samples.py            (all models)
      python sample_models/check_samples.py mobilenet  (some)
The quantized models are written to a temporary directory and deleted afterwards.
"""

import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["mlp", "cnn", "mobilenet", "transformer", "tokens"]


class NpzReader(CalibrationDataReader):
    def __init__(self, x, batch=32):
        self.batches = [{"input": x[i : i + batch]} for i in range(0, len(x), batch)]
        self.it = iter(self.batches)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        self.it = iter(self.batches)


def run(path, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"input": x})[0]


def check(name, tmp):
    d = os.path.join(HERE, name)
    path = os.path.join(d, "model.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    calib = np.load(os.path.join(d, "calib.npz"))["input"]
    ev = np.load(os.path.join(d, "eval.npz"))
    x, labels = ev["input"], ev["labels"]
    # float32 inputs, except tokens/ (int64 token ids 0..16)
    in_type = np.int64 if name == "tokens" else np.float32
    assert calib.dtype == in_type and x.dtype == in_type and labels.dtype == np.int64
    declared = model.graph.input[0].type.tensor_type.elem_type
    assert declared == onnx.helper.np_dtype_to_tensor_dtype(np.dtype(in_type)), f"{name}: input type"
    float_logits = run(path, x)
    row = {"name": name, "n_calib": len(calib), "n_eval": len(x),
           "float": float(np.mean(float_logits.argmax(1) == labels)),
           "ops": sorted({n.op_type for n in model.graph.node}),
           "opset": model.opset_import[0].version}
    for per_channel in (True, False):
        qpath = os.path.join(tmp, f"{name}_{'pc' if per_channel else 'pt'}.onnx")
        src = path
        if per_channel and row["opset"] < 13:
            # Per-channel DequantizeLinear (the `axis` attribute) needs opset >= 13, and ORT's
            # quantize_static would otherwise write an invalid model: upgrade the float model first.
            src = os.path.join(tmp, f"{name}_opset13.onnx")
            onnx.save(version_converter.convert_version(model, 13), src)
            row["note"] = "per-channel run on the model converted to opset 13 (onnx.version_converter)"
        quantize_static(
            src, qpath, NpzReader(calib),
            quant_format=QuantFormat.QDQ, per_channel=per_channel,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
        q_logits = run(qpath, x)
        key = "per_channel" if per_channel else "per_tensor"
        row[key] = float(np.mean(q_logits.argmax(1) == labels))
        row[key + "_agree"] = float(np.mean(q_logits.argmax(1) == float_logits.argmax(1)))
    return row


def main(names):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows.append(check(name, tmp))
    print()
    print("| model | opset | eval N | float (ORT) | ORT int8 per-channel | ORT int8 per-tensor |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['opset']} | {r['n_eval']} | {r['float'] * 100:.2f}% "
              f"| {r['per_channel'] * 100:.2f}% (top-1 agree {r['per_channel_agree'] * 100:.1f}%) "
              f"| {r['per_tensor'] * 100:.2f}% (top-1 agree {r['per_tensor_agree'] * 100:.1f}%) |")
    print()
    for r in rows:
        print(f"{r['name']}: ops {', '.join(r['ops'])}")
    for r in rows:
        if "note" in r:
            print(f"note: {r['name']}: {r['note']}")


if __name__ == "__main__":
    main(sys.argv[1:] or MODELS)
