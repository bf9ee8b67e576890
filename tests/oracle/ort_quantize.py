"""Baseline: ONNX Runtime's own quantize_static (QDQ, MinMax, QInt8 symmetric weights, QUInt8
activations) on a model with its calibration set; models below opset 13 are converted to 13
first when per-channel (ORT would otherwise write an invalid model).

Usage: ort_quantize.py MODEL.onnx CALIB.npz OUT.onnx per_channel|per_tensor [EXCLUDED_OP_TYPES [EXCLUDED_NODES]]
(comma-separated lists: op types left out of ORT's default op_types_to_quantize, nodes_to_exclude)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ort_quantize_timed import ort_quantize  # noqa: E402


def main():
    model_path, calib, out, mode = sys.argv[1:5]
    ops = [o for o in (sys.argv[5] if len(sys.argv) > 5 else "").split(",") if o]
    nodes = [n for n in (sys.argv[6] if len(sys.argv) > 6 else "").split(",") if n]
    ort_quantize(model_path, calib, out, "minmax", per_channel=mode == "per_channel", exclude_op_types=ops,
                 nodes_to_exclude=nodes)


if __name__ == "__main__":
    main()
