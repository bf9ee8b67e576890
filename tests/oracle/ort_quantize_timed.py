"""Baseline for the benchmark: ONNX Runtime's quantize_static (QDQ, per-channel QInt8 symmetric
weights, QUInt8 activations) with a chosen calibrator, timed inside this process.
Prints JSON: {"seconds": wall time of calibrate+quantize+export, "peak_rss_kib": ru_maxrss}.

Usage: ort_quantize_timed.py MODEL.onnx CALIB.npz OUT.onnx minmax|percentile|entropy
"""
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
           "entropy": CalibrationMethod.Entropy}


class Reader(CalibrationDataReader):
    def __init__(self, arrays, names):
        n = len(arrays[names[0]])
        self.items = [{k: arrays[k][i:i + 1] for k in names} for i in range(n)]
        self.it = iter(self.items)

    def get_next(self):
        return next(self.it, None)


def ort_quantize(model_path, calib, out, method, per_channel=True, exclude_op_types=(), nodes_to_exclude=()):
    """quantize_static as users run it: QDQ, QInt8 symmetric weights, QUInt8 activations, one
    sample per calibration batch; per-channel models below opset 13 are converted to 13 first.
    `exclude_op_types` removes op types from ORT's default op_types_to_quantize."""
    model = onnx.load(model_path)
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "model.onnx")
        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        onnx.save(version_converter.convert_version(model, 13) if per_channel and opset < 13 else model, src)
        op_types = None
        if exclude_op_types:
            op_types = sorted((set(QLinearOpsRegistry) | set(QDQRegistry)) - set(exclude_op_types))
        quantize_static(src, out, Reader(np.load(calib), names), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=op_types, nodes_to_exclude=list(nodes_to_exclude) or None,
                        per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=METHODS[method],
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})


def main():
    model_path, calib, out, method = sys.argv[1:5]
    start = time.perf_counter()
    ort_quantize(model_path, calib, out, method)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


if __name__ == "__main__":
    main()
