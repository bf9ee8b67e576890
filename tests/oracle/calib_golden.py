"""Oracle: reference calibration results computed with ONNX Runtime's own calibrators and helpers.

Usage: calib_golden.py MODEL.onnx CALIB.npz OUT.json [--max-samples N]

Feeds the calibration set one sample at a time (batch of 1, file order) through ORT's
MinMax, Percentile (ORT defaults: 2048 bins, 99.999, symmetric) and Entropy (512 bins,
128 quantized bins, not symmetric) calibrators, and writes per activation tensor the ranges
each calibrator gives plus the (scale, zero_point) that ORT's `compute_scale_zp` derives from
the MinMax range (uint8 asymmetric [0, 255] and int8 symmetric [-128, 127]). For every
Conv / ConvTranspose / Gemm / MatMul whose input[1] is a float constant (initializer or
Constant node), it writes ORT's per-tensor and per-channel int8 symmetric narrow-range
([-127, 127]) weight parameters, computed with `compute_data_quant_params` as
`quantize_static` does.

Every float in the JSON is a float32 value written as a Python float, so it parses back to
exactly the same float32. Progress and timings go to stderr; ORT's own prints are discarded.
"""
import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, numpy_helper
from onnxruntime.quantization.calibrate import CalibrationDataReader, CalibrationMethod, create_calibrator
from onnxruntime.quantization.quant_utils import (
    compute_data_quant_params,
    compute_scale_zp,
    get_qmin_qmax_for_qType,
)

ENTROPY_OPTIONS = {"num_bins": 512, "num_quantized_bins": 128}
WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


class NpzReader(CalibrationDataReader):
    """One sample per get_next(): arr[i:i+1] for every npz key that is a model input."""

    def __init__(self, arrays: dict[str, np.ndarray], num_samples: int):
        self.arrays = arrays
        self.num_samples = num_samples
        self.index = 0

    def get_next(self) -> dict | None:
        if self.index >= self.num_samples:
            return None
        i = self.index
        self.index += 1
        return {name: arr[i : i + 1] for name, arr in self.arrays.items()}


def f32(x) -> float:
    """A float32 scalar (or 1-element float32 array) as an exactly equal Python float."""
    a = np.asarray(x)
    if a.dtype != np.float32:
        raise TypeError(f"expected float32, got {a.dtype}")
    if a.size != 1:
        raise ValueError(f"expected one value, got shape {a.shape}")
    v = float(a.reshape(()).item())
    if not np.isfinite(v):
        raise ValueError(f"non-finite value {v}")
    return v


def qparams(zero_point, scale) -> dict:
    zp = np.asarray(zero_point)
    if zp.size != 1:
        raise ValueError(f"expected one zero point, got shape {zp.shape}")
    return {"scale": f32(scale), "zero_point": int(zp.reshape(()).item())}


def run_calibrator(model_path: Path, method, extra_options: dict, arrays, num_samples: int):
    """Run one ORT calibrator in its own temp dir (ORT writes the augmented and shape-inferred
    models next to the paths it is given). Returns {tensor name: (lowest, highest)}."""
    with tempfile.TemporaryDirectory(prefix="qb-calib-") as tmp:
        local_model = Path(tmp) / "model.onnx"
        shutil.copyfile(model_path, local_model)
        with contextlib.redirect_stdout(io.StringIO()):
            calibrator = create_calibrator(
                local_model,
                augmented_model_path=str(Path(tmp) / "augmented_model.onnx"),
                calibrate_method=method,
                extra_options=extra_options,
            )
            calibrator.collect_data(NpzReader(arrays, num_samples))
            data = calibrator.compute_data()
        del calibrator
    return {name: td.range_value for name, td in data.items()}


def constant_tensors(model: onnx.ModelProto) -> dict[str, tuple[np.ndarray, str]]:
    """Float constants by tensor name: initializers and `value` of Constant nodes."""
    out = {}
    for init in model.graph.initializer:
        out[init.name] = (numpy_helper.to_array(init), "initializer")
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value":
                    out[node.output[0]] = (numpy_helper.to_array(attr.t), "constant_node")
    return {k: v for k, v in out.items() if v[0].dtype == np.float32}


def weight_axis(node: onnx.NodeProto, rank: int) -> int:
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b == 1 else 1
    if node.op_type == "MatMul":
        return rank - 1
    raise ValueError(node.op_type)


def weight_params(model: onnx.ModelProto) -> dict:
    consts = constant_tensors(model)
    weights = {}
    for node in model.graph.node:
        if node.op_type not in WEIGHT_OPS or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            continue
        name = node.input[1]
        if name not in consts or name in weights:
            continue
        w = consts[name][0]
        axis = weight_axis(node, w.ndim)
        # quantize_static, QInt8 weights, symmetric: qmin/qmax from get_qmin_qmax_for_qType(INT8,
        # symmetric=True) = [-127, 127]; rmin/rmax = float32 min/max of the data.
        per_tensor = compute_data_quant_params(w.flatten(), TensorProto.INT8, True)
        per_channel = [
            qparams(*compute_data_quant_params(w.take(i, axis).ravel(), TensorProto.INT8, True))
            for i in range(w.shape[axis])
        ]
        weights[name] = {
            "node": node.name,
            "op": node.op_type,
            "axis": axis,
            "per_tensor": qparams(*per_tensor),
            "per_channel": per_channel,
        }
    return weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("calib", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--max-samples", type=int, default=None)
    args = ap.parse_args()

    onnxruntime.set_default_logger_severity(3)
    model_path = args.model.resolve()
    model = onnx.load(str(model_path))
    input_names = {i.name for i in model.graph.input}

    npz = np.load(args.calib)
    arrays = {k: npz[k] for k in npz.files if k in input_names}
    if not arrays:
        sys.exit(f"no key of {args.calib} matches a model input ({sorted(input_names)})")
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1:
        sys.exit(f"inputs have different sample counts: {counts}")
    num_samples = counts.pop()
    if args.max_samples is not None:
        num_samples = min(num_samples, args.max_samples)

    timings = {}
    t0 = time.perf_counter()
    minmax = run_calibrator(model_path, CalibrationMethod.MinMax, {}, arrays, num_samples)
    timings["minmax"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    percentile = run_calibrator(model_path, CalibrationMethod.Percentile, {}, arrays, num_samples)
    timings["percentile"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    entropy = run_calibrator(model_path, CalibrationMethod.Entropy, ENTROPY_OPTIONS, arrays, num_samples)
    timings["entropy"] = time.perf_counter() - t0

    names = sorted(set(minmax) & set(percentile) & set(entropy))
    union = set(minmax) | set(percentile) | set(entropy)
    if union != set(names):
        print(f"warning: not calibrated by all three: {sorted(union - set(names))}", file=sys.stderr)

    u8_qmin, u8_qmax = get_qmin_qmax_for_qType(TensorProto.UINT8, symmetric=False)  # [0, 255]
    # int8 symmetric activations over the full [-128, 127] range (get_qmin_qmax_for_qType with
    # symmetric=False; with symmetric=True ORT would give the narrow [-127, 127]).
    i8_qmin, i8_qmax = get_qmin_qmax_for_qType(TensorProto.INT8, symmetric=False)

    t0 = time.perf_counter()
    activations = {}
    for name in names:
        lo, hi = minmax[name]
        rmin = np.asarray(lo, dtype=np.float32)  # already float32 from ReduceMin/ReduceMax
        rmax = np.asarray(hi, dtype=np.float32)
        activations[name] = {
            "minmax": [f32(lo), f32(hi)],
            "uint8_asym": qparams(*compute_scale_zp(rmin, rmax, u8_qmin, u8_qmax, symmetric=False)),
            "int8_sym": qparams(*compute_scale_zp(rmin, rmax, i8_qmin, i8_qmax, symmetric=True)),
            "percentile": [f32(v) for v in percentile[name]],
            "entropy": [f32(v) for v in entropy[name]],
        }
    weights = weight_params(model)
    timings["params"] = time.perf_counter() - t0

    stem = model_path.stem
    result = {
        "model": model_path.parent.name if stem == "model" else stem,
        "num_samples": num_samples,
        "activations": activations,
        "weights": weights,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    with open(tmp_out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True, allow_nan=False)
        f.write("\n")
    os.replace(tmp_out, args.out)
    print(
        f"{result['model']}: {num_samples} samples, {len(activations)} activations, "
        f"{len(weights)} weights; "
        + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
