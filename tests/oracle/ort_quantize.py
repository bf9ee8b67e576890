"""Baseline: ONNX Runtime's own quantize_static (QDQ, MinMax, QInt8 symmetric weights, QUInt8
activations) on a model with its calibration set; models below opset 13 are converted to 13
first when per-channel (ORT would otherwise write an invalid model).

Usage: ort_quantize.py MODEL.onnx CALIB.npz OUT.onnx per_channel|per_tensor
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ort_quantize_timed import ort_quantize  # noqa: E402


def main():
    model_path, calib, out, mode = sys.argv[1:5]
    ort_quantize(model_path, calib, out, "minmax", per_channel=mode == "per_channel")


if __name__ == "__main__":
    main()
