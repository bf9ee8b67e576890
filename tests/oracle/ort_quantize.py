"""Baseline: ONNX Runtime's own quantize_static (QDQ, MinMax, QInt8 symmetric weights, QUInt8
activations) on a model with its calibration set; models below opset 13 are converted to 13
first when per-channel (ORT would otherwise write an invalid model).

Usage: ort_quantize.py MODEL.onnx CALIB.npz OUT.onnx per_channel|per_tensor
"""
import os
import sys
import tempfile

import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)


class Reader(CalibrationDataReader):
    def __init__(self, arrays, names):
        n = len(arrays[names[0]])
        self.items = [{k: arrays[k][i:i + 1] for k in names} for i in range(n)]
        self.it = iter(self.items)

    def get_next(self):
        return next(self.it, None)


def main():
    model_path, calib, out, mode = sys.argv[1:5]
    per_channel = mode == "per_channel"
    model = onnx.load(model_path)
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "model.onnx")
        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        onnx.save(version_converter.convert_version(model, 13) if per_channel and opset < 13 else model, src)
        quantize_static(src, out, Reader(np.load(calib), names), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})


if __name__ == "__main__":
    main()
