"""Oracle and baseline for weight-only low-bit quantization: ONNX Runtime's own
MatMulNBitsQuantizer (onnxruntime/quantization/matmul_nbits_quantizer.py), ONNX Runtime's
evaluation of the result, and the dequantized weights as ONNX Runtime computes them.

  quantize MODEL OUT --algorithm rtn|rtn-inc|hqq|gptq [--bits 4] [--block-size 32] [--symmetric]
           [--format qoperator|qdq] [--calib NPZ] [--accuracy-level L]
      Quantizes every MatMul with a constant weight in this process and writes OUT (with external
      data, OUT + ".data", when MODEL has external data). Prints one JSON line:
        {"seconds": load + quantize + save, "quantize_seconds": the quantizer alone,
         "peak_rss_mib": this process's peak RSS (ru_maxrss), "rss_after_imports_mib": the same
         before the model was loaded, "bytes": OUT's size including external data,
         "float_bytes": MODEL's, "size_ratio": bytes / float_bytes, "quantized_nodes": ..., ...}
      Algorithms:
        rtn      DefaultWeightOnlyQuantConfig: round to nearest in ORT's C++ kernel (what
                 `python -m onnxruntime.quantization.matmul_nbits_quantizer --quant_method default`
                 runs). The only one with --bits 2/8 (qoperator) and with --format qdq: opset-21
                 DequantizeLinear with block_size and axis 0, INT4 (symmetric) / UINT4 weights.
                 ORT sets the opset to 21 and IR to 10 without converting any op, so a model below
                 opset 21 is first converted with onnx.version_converter (its time is in
                 "convert_seconds", not in "seconds"; --no-convert skips it).
        rtn-inc  RTNWeightOnlyQuantConfig: the numpy RTN of ORT's bundled copy of Intel Neural
                 Compressor (different rounding of scales / zero points than rtn).
        hqq      HQQWeightOnlyQuantConfig: always asymmetric with float zero points; ORT's code
                 needs PyTorch. Without torch it prints {"error": ...} and exits 2, unless
                 --torch-shim: ORT's HQQ code then runs on a numpy stand-in for the dozen torch
                 calls it makes (same algorithm; float32 means may differ from torch's in the last
                 bit). The JSON says which ("torch": "torch" | "numpy shim").
        gptq     GPTQWeightOnlyQuantConfig (bundled Neural Compressor, numpy): needs --calib
                 (torch is not needed: the feeds are numpy arrays). In ORT 1.31.1 it propagates
                 no error (a Cholesky factor is transposed the wrong way) and gives RTN's weights up
                 to scale rounding; --gptq-fix patches that line to get real GPTQ.
      rtn-inc / hqq / gptq write MatMulNBits only (qoperator).

  compare FLOAT QUANT EVAL.npz [--labels] [--batch 32] [--output NAME]
      Runs both models in ONNX Runtime (CPU, 1 thread) on every sample of EVAL.npz and prints JSON:
      mean (and min) per-sample cosine similarity of the output, output SQNR in dB, top-1 agreement
      with the float model (argmax over the last axis), max |float - quant|, run times, and both
      accuracies when the set has "labels" (--labels: fail if it has none).

  weights MODEL [OUT.npz] [--all-dq]
      For every com.microsoft.MatMulNBits node and every blocked DequantizeLinear (block_size
      attribute, or a 4-bit / 2-bit constant input; --all-dq: every DequantizeLinear of a constant)
      computes the dequantized weight as ONNX Runtime computes it, and saves it under the node's
      name into OUT.npz (default MODEL without .onnx + ".weights.npz"):
        MatMulNBits: a one-node model with the same attributes (accuracy_level dropped, so the
          kernel computes in float) and the same B / scales / zero_points / g_idx initializers,
          fed A = the K x K identity: its output is the dequantized weight W [K, N] (the MatMul
          layout). 1·w + 0·(...) is exact in float, so this is the weight the kernel multiplies by.
        DequantizeLinear: the node alone with its constant inputs (graph optimizations off).
      Prints JSON per node: shape, bits, block size, max |ORT - numpy (q - zp)·scale| and which
      numpy formulas ORT matches bit for bit: with ORT 1.31.1 here, MatMulNBits with packed integer
      zero points (or none) and DequantizeLinear give (q - zp)·s; MatMulNBits with float zero
      points (HQQ) gives q·s - zp·s (two roundings, no FMA).

Run with the oracle venv (scripts/python-env.sh; needs onnx-ir, which ORT's quantizer imports).
"""
import argparse
import contextlib
import json
import logging
import os
import resource
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from feeds import feeds as input_feeds  # noqa: E402


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def fail(msg, **extra):
    print(json.dumps({"error": msg, **extra}))
    sys.exit(2)


def external_locations(path):
    """External data files referenced by the model at `path` (relative to its folder)."""
    m = onnx.load(path, load_external_data=False)
    locs = set()
    for t in m.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            locs.update(e.value for e in t.external_data if e.key == "location")
    return sorted(locs)


def model_bytes(path):
    base = os.path.dirname(os.path.abspath(path))
    return os.path.getsize(path) + sum(os.path.getsize(os.path.join(base, f)) for f in external_locations(path))


def session(path, optimize=True):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------------------------
# quantize
# ---------------------------------------------------------------------------------------------
def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except Exception:  # noqa: BLE001 (ImportError, or a broken CUDA-only install)
        return False


def fix_gptq_cholesky():
    """--gptq-fix: ORT's bundled gptq() (neural_compressor/weight_only.py, ORT 1.31.1) keeps the
    weight as [K, N] but takes the *upper* Cholesky factor of H^-1 (`cholesky(inv(H)).T`) and then
    reads its column below the diagonal (`Hinv1[i:, i]`, `Hinv[i2:, i1:i2]`), which is zero: no
    error is propagated and the result is RTN (up to scale rounding). Using the lower factor makes
    those reads the rows the GPTQ paper propagates along. Redefines gptq() in ORT's module."""
    import inspect
    import textwrap
    from onnxruntime.quantization.neural_compressor import weight_only as wo

    src = inspect.getsource(wo.gptq)
    bad = "H = np.linalg.cholesky(np.linalg.inv(H)).T"
    if bad not in src:
        fail("--gptq-fix: this ONNX Runtime's gptq() no longer has the line it patches")
    exec(compile(textwrap.dedent(src.replace(bad, "H = np.linalg.cholesky(np.linalg.inv(H))")),
                 wo.__file__, "exec"), wo.__dict__)


def install_torch_shim():
    """--torch-shim: a numpy stand-in for the few torch calls ORT's HQQ code makes (CPU, float32),
    installed as the module `torch`. The algorithm is ORT's own code, step for step; only the
    float32 reductions (min/max are exact; mean's summation order) may differ from PyTorch's in the
    last bit, so a zero point can differ by an ulp and, rarely, a weight round the other way."""
    import importlib.machinery
    import types

    class Tensor:
        is_cuda = False
        device = "cpu"

        def __init__(self, a):
            self.a = np.asarray(a)

        shape = property(lambda self: self.a.shape)
        dtype = property(lambda self: self.a.dtype)
        T = property(lambda self: Tensor(self.a.T))  # a view, as in torch

        def float(self):
            return Tensor(self.a.astype(np.float32))

        def int(self):
            return Tensor(self.a.astype(np.int32))

        def to(self, dtype):
            return Tensor(self.a.astype(dtype))

        def cuda(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.a

        def contiguous(self):
            return Tensor(np.ascontiguousarray(self.a))

        def reshape(self, *shape):
            return Tensor(self.a.reshape(shape[0] if len(shape) == 1 else shape))

        def _reduce(self, f, axis, keepdim):
            if axis is None:
                return Tensor(f(self.a))
            return Tensor(f(self.a, axis=axis, keepdims=keepdim)), None  # (values, indices)

        def min(self, axis=None, keepdim=False):
            return self._reduce(np.min, axis, keepdim)

        def max(self, axis=None, keepdim=False):
            return self._reduce(np.max, axis, keepdim)

        def mean(self, axis=None, keepdim=False):
            return Tensor(np.mean(self.a, axis=axis, keepdims=keepdim, dtype=self.a.dtype))

        def sum(self):
            return Tensor(self.a.sum())

        def item(self):
            return self.a.item()

        def __float__(self):
            return float(self.a)

        def clamp(self, min=None, max=None):  # noqa: A002 (torch's names)
            return Tensor(np.clip(self.a, min, max))

        def element_size(self):
            return self.a.itemsize

        def __getitem__(self, idx):
            return Tensor(self.a[idx.a if isinstance(idx, Tensor) else idx])

        def __setitem__(self, idx, v):
            self.a[idx.a if isinstance(idx, Tensor) else idx] = v.a if isinstance(v, Tensor) else v

        def __ior__(self, o):
            self.a |= o.a.astype(self.a.dtype)
            return self

    def _v(x):
        return x.a if isinstance(x, Tensor) else x

    for name, op in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
                     ("lshift", np.left_shift), ("eq", np.equal), ("lt", np.less), ("gt", np.greater)):
        setattr(Tensor, f"__{name}__", lambda self, o, op=op: Tensor(op(self.a, _v(o))))
        setattr(Tensor, f"__r{name}__", lambda self, o, op=op: Tensor(op(_v(o), self.a)))
    Tensor.__neg__ = lambda self: Tensor(-self.a)

    def pad(x, pads, mode="constant", value=0):
        widths = [(0, 0)] * x.a.ndim
        for i in range(len(pads) // 2):  # torch: pairs from the last dimension backwards
            widths[x.a.ndim - 1 - i] = (pads[2 * i], pads[2 * i + 1])
        return Tensor(np.pad(x.a, widths, mode, constant_values=value))

    torch = types.ModuleType("torch")
    torch.__spec__ = importlib.machinery.ModuleSpec("torch", None)
    torch.Tensor = Tensor
    torch.float32, torch.float16, torch.uint8 = np.float32, np.float16, np.uint8
    torch.from_numpy = Tensor
    torch.round = lambda x: Tensor(np.round(x.a))  # half to even, like torch.round
    torch.sign = lambda x: Tensor(np.sign(x.a))
    torch.abs = lambda x: Tensor(np.abs(x.a))
    torch.pow = lambda x, p: Tensor(np.power(x.a, np.float32(p)))
    torch.mean = lambda x, axis=None, keepdim=False: x.mean(axis, keepdim)
    torch.zeros = lambda shape, dtype=np.float32, device=None: Tensor(np.zeros(shape, dtype))
    torch.cuda = types.SimpleNamespace(is_available=lambda: False)
    torch.nn = types.SimpleNamespace(functional=types.SimpleNamespace(
        pad=pad, relu=lambda x: Tensor(np.maximum(x.a, np.float32(0)))))
    sys.modules["torch"] = torch


def make_reader(npz_path, model, batch):
    from onnxruntime.quantization import CalibrationDataReader

    arrays = np.load(npz_path)
    init_names = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in init_names]
    elem = {i.name: helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in model.graph.input}
    missing = [n for n in names if n not in arrays]
    if missing:
        fail(f"{npz_path} has no key for model input(s) {missing}")
    data = {n: np.asarray(arrays[n]).astype(elem[n]) for n in names}
    count = len(data[names[0]])

    class NpzReader(CalibrationDataReader):
        def __init__(self):
            self.items = [{n: data[n][i:i + batch] for n in names} for i in range(0, count, batch)]
            self.it = iter(self.items)

        def get_next(self):
            return next(self.it, None)

        def rewind(self):
            self.it = iter(self.items)

    return NpzReader(), count


def cmd_quantize(a):
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    for name in ("onnxruntime.quantization.matmul_nbits_quantizer", "neural_compressor", "root"):
        logging.getLogger(None if name == "root" else name).setLevel(logging.WARNING)
    qdq = a.format == "qdq"
    if qdq and a.algorithm != "rtn":
        fail(f"--format qdq: ONNX Runtime writes DequantizeLinear only for rtn (DefaultWeightOnlyQuantConfig); "
             f"{a.algorithm} writes MatMulNBits")
    if qdq and a.bits != 4:
        fail("--format qdq: ONNX Runtime writes 4-bit DequantizeLinear only")
    if a.algorithm == "hqq":
        if a.symmetric:
            fail("hqq is asymmetric only (float zero points) in ONNX Runtime")
        if not torch_available() and a.torch_shim:
            install_torch_shim()
        elif not torch_available():
            fail("hqq: ONNX Runtime's HQQ quantizer (HQQWeightOnlyQuantizer) needs PyTorch, which is not "
                 "installed. PyPI's Linux x86_64 torch wheel is ~514 MiB and pulls the CUDA wheels "
                 "(cuDNN, cuBLAS, NCCL, ...: several GiB); the CPU-only index is not reachable here. "
                 "--torch-shim runs ORT's HQQ code on a numpy stand-in for torch instead.",
                 algorithm="hqq")
    if a.algorithm == "gptq" and not a.calib:
        fail("gptq needs --calib NPZ")

    rss0 = rss_mib()
    float_bytes = model_bytes(a.model)
    external = bool(external_locations(a.model))
    t0 = time.perf_counter()
    # Load the graph without the external data, convert (below) while the weights are still
    # references, then read the weights: the conversion then neither copies them nor adds to the RSS.
    model = onnx.load(a.model, load_external_data=False)
    n_matmul = sum(1 for n in model.graph.node if n.op_type == "MatMul")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    convert_seconds = 0.0
    if qdq and opset < 21 and not a.no_convert:
        # ORT's QDQ path only rewrites the opset number to 21 ("the generated model may not be a
        # valid model"): ops whose signature changed since the model's opset (ReduceMean's axes at
        # 18, ...) then fail to load. Convert the float model to opset 21 first, as a user must.
        from onnx import version_converter
        tc = time.perf_counter()
        model = version_converter.convert_version(model, 21)
        convert_seconds = time.perf_counter() - tc
    from onnx.external_data_helper import load_external_data_for_model
    load_external_data_for_model(model, os.path.dirname(os.path.abspath(a.model)))

    fmt = QuantFormat.QDQ if qdq else QuantFormat.QOperator
    if a.algorithm == "rtn":
        cfg = mnq.DefaultWeightOnlyQuantConfig(block_size=a.block_size, is_symmetric=a.symmetric,
                                               accuracy_level=a.accuracy_level, quant_format=fmt, bits=a.bits)
    elif a.algorithm == "rtn-inc":
        cfg = mnq.RTNWeightOnlyQuantConfig()
    elif a.algorithm == "hqq":
        cfg = mnq.HQQWeightOnlyQuantConfig(block_size=a.block_size, bits=a.bits)
    else:
        reader, n_calib = make_reader(a.calib, model, a.calib_batch)
        cfg = mnq.GPTQWeightOnlyQuantConfig(calibration_data_reader=reader, percdamp=a.percdamp,
                                            block_size=a.gptq_blocksize, actorder=a.actorder, mse=a.mse)
        if a.gptq_fix:
            fix_gptq_cholesky()
        if not torch_available():
            # The bundled Neural Compressor converts dict feeds with util.to_numpy, which starts with
            # `import torch` even for numpy arrays. Our feeds are numpy arrays: convert them as numpy.
            from onnxruntime.quantization.neural_compressor import util as inc_util
            inc_util.to_numpy = np.asarray

    tq = time.perf_counter()
    # The quantizer logs per node and the bundled Neural Compressor prints a progress bar on stdout:
    # keep stdout for the JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        q = mnq.MatMulNBitsQuantizer(model, bits=a.bits, block_size=a.block_size, is_symmetric=a.symmetric,
                                     accuracy_level=a.accuracy_level, quant_format=fmt, algo_config=cfg)
        q.process()
    quantize_seconds = time.perf_counter() - tq
    out_model = q.model.model
    if a.algorithm == "rtn":
        q.model.topological_sort()

    out_dir = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(out_dir, exist_ok=True)
    data_name = os.path.basename(a.out) + ".data"
    if os.path.exists(os.path.join(out_dir, data_name)):
        os.remove(os.path.join(out_dir, data_name))  # onnx appends to an existing data file
    if external:
        onnx.save_model(out_model, a.out, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024, convert_attribute=False)
    else:
        onnx.save_model(out_model, a.out)
    seconds = time.perf_counter() - t0 - convert_seconds
    peak = rss_mib()

    ops = {}
    for n in out_model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    quantized = ops.get("MatMulNBits", 0) + sum(
        1 for n in out_model.graph.node if n.op_type == "DequantizeLinear"
        and any(at.name == "block_size" for at in n.attribute))
    out_bytes = model_bytes(a.out)
    print(json.dumps({
        "seconds": round(seconds, 4), "quantize_seconds": round(quantize_seconds, 4),
        "convert_seconds": round(convert_seconds, 4), "opset_in": opset,
        "peak_rss_mib": round(peak, 1), "rss_after_imports_mib": round(rss0, 1),
        "bytes": out_bytes, "float_bytes": float_bytes, "size_ratio": round(out_bytes / float_bytes, 4),
        "algorithm": a.algorithm, "format": a.format, "bits": a.bits, "block_size": a.block_size,
        "symmetric": a.symmetric, "external_data": external,
        **({"gptq_fix": a.gptq_fix, "calib_samples": n_calib} if a.algorithm == "gptq" else {}),
        **({"torch": "numpy shim" if a.torch_shim and "torch" in sys.modules
            and not hasattr(sys.modules["torch"], "__version__") else "torch"} if a.algorithm == "hqq" else {}),
        "matmuls": n_matmul, "quantized_nodes": quantized, "op_counts": ops,
    }))


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------
def run_all(sess, arrays, batch, output):
    feeds = input_feeds(sess, arrays)
    n = len(next(iter(feeds.values())))
    outs = []
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        outs.append(sess.run([output], {k: v[i:i + batch] for k, v in feeds.items()})[0])
    return np.concatenate(outs), time.perf_counter() - t0


def cmd_compare(a):
    arrays = np.load(a.eval)
    if a.labels and "labels" not in arrays:
        fail(f"{a.eval} has no 'labels'")
    sf, sq = session(a.float), session(a.quant)
    output = a.output or sf.get_outputs()[0].name
    f, tf = run_all(sf, arrays, a.batch, output)
    q, tq = run_all(sq, arrays, a.batch, output)
    f, q = f.astype(np.float64), q.astype(np.float64)
    n = len(f)
    f2, q2 = f.reshape(n, -1), q.reshape(n, -1)
    den = np.linalg.norm(f2, axis=1) * np.linalg.norm(q2, axis=1)
    cos = np.where(den > 0, np.sum(f2 * q2, axis=1) / np.where(den > 0, den, 1.0), 1.0)
    err = float(np.sum((f - q) ** 2))
    sqnr = 200.0 if err == 0 else float(10 * np.log10(np.sum(f**2) / err))
    top_f, top_q = f.argmax(-1), q.argmax(-1)
    out = {
        "samples": n, "output": output,
        "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
        "sqnr_db": sqnr, "top1_agreement": float(np.mean(top_f == top_q)),
        "max_abs_diff": float(np.max(np.abs(f - q))),
        "float_seconds": round(tf, 4), "quant_seconds": round(tq, 4),
    }
    if "labels" in arrays:
        labels = np.asarray(arrays["labels"])
        out["float_accuracy"] = float(np.mean(top_f.reshape(labels.shape) == labels))
        out["quant_accuracy"] = float(np.mean(top_q.reshape(labels.shape) == labels))
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------
def attrs(node):
    return {at.name: helper.get_attribute_value(at) for at in node.attribute}


def unpack_bits(packed, bits, count):
    """uint8 [..., nbytes] -> uint8 [..., count], low bits first within each byte."""
    per = 8 // bits
    mask = (1 << bits) - 1
    vals = np.stack([(packed >> (bits * i)) & mask for i in range(per)], axis=-1)
    return vals.reshape(*packed.shape[:-1], -1)[..., :count]


def matmulnbits_reference(node_attrs, arrs):
    """numpy dequantizations of MatMulNBits initializers (no g_idx), each W [K, N] float32:
    {"(q-zp)*s": one rounding, "q*s-zp*s": two products then a difference, no FMA}. Measured with
    ORT 1.31.1 on x86-64 (AVX-512): packed integer zero points (or none) give exactly the first,
    float zero points (HQQ) exactly the second."""
    K, N, bits, bs = (int(node_attrs[k]) for k in ("K", "N", "bits", "block_size"))
    nb = (K + bs - 1) // bs
    b, scales = arrs[0], arrs[1].reshape(N, nb)
    q = unpack_bits(b.reshape(N, nb, -1), bits, bs).astype(np.float32)  # [N, nb, bs]
    if len(arrs) > 2 and arrs[2] is not None:
        zp = arrs[2]
        if zp.dtype == np.uint8:
            zp = unpack_bits(zp.reshape(N, -1), bits, nb).astype(np.float32)
        else:
            zp = zp.reshape(N, nb).astype(np.float32)
    else:
        zp = np.full((N, nb), float(1 << (bits - 1)), np.float32)
    sc, zp = scales[:, :, None].astype(np.float32), zp[:, :, None]
    forms = {"(q-zp)*s": (q - zp) * sc, "q*s-zp*s": q * sc - zp * sc}
    return {k: w.reshape(N, nb * bs)[:, :K].T.astype(np.float32) for k, w in forms.items()}


def dq_reference(node_attrs, x, scale, zp):
    """numpy (x - zp) * scale for DequantizeLinear (per-tensor, per-axis or blocked)."""
    x = x.astype(np.float32)
    zp = np.zeros_like(scale, np.float32) if zp is None else zp.astype(np.float32)
    scale = scale.astype(np.float32)
    if scale.ndim == 0 or scale.size == 1:
        return ((x - zp.reshape(())) * scale.reshape(())).astype(np.float32)
    axis = int(node_attrs.get("axis", 1)) % x.ndim
    bs = int(node_attrs.get("block_size", 0))
    if bs > 0:
        scale = np.repeat(scale, bs, axis=axis).take(np.arange(x.shape[axis]), axis=axis)
        zp = np.repeat(zp, bs, axis=axis).take(np.arange(x.shape[axis]), axis=axis)
    else:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((x - zp) * scale).astype(np.float32)


LOW_BIT = {TensorProto.INT4, TensorProto.UINT4}
for _t in ("INT2", "UINT2"):
    if hasattr(TensorProto, _t):
        LOW_BIT.add(getattr(TensorProto, _t))


def tiny_model(model, node, inputs, inits, graph_inputs, outputs):
    g = helper.make_graph([node], "weight_probe", graph_inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return m


def cmd_weights(a):
    import tempfile

    model = onnx.load(a.model)
    inits = {t.name: t for t in model.graph.initializer}
    out_path = a.out or (a.model[:-5] if a.model.endswith(".onnx") else a.model) + ".weights.npz"
    result, report = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for idx, node in enumerate(model.graph.node):
            key = node.name or node.output[0]
            at = attrs(node)
            if node.op_type == "MatMulNBits" and node.domain == "com.microsoft":
                ins = list(node.input[1:5])
                while ins and not ins[-1]:
                    ins.pop()
                missing = [i for i in ins if i and i not in inits]
                if missing:
                    report[key] = {"error": f"inputs {missing} are not initializers"}
                    continue
                K, N = int(at["K"]), int(at["N"])
                scale_t = inits[ins[1]]
                elem = scale_t.data_type
                probe = helper.make_node(
                    "MatMulNBits", ["A"] + ins, ["W"], name=key, domain="com.microsoft",
                    **{k: v for k, v in at.items() if k != "accuracy_level"})
                m = tiny_model(model, probe, ins, [inits[i] for i in ins if i],
                               [helper.make_tensor_value_info("A", elem, [K, K])],
                               [helper.make_tensor_value_info("W", elem, [K, N])])
                p = os.path.join(tmp, f"probe{idx}.onnx")
                onnx.save_model(m, p)
                eye = np.eye(K, dtype=helper.tensor_dtype_to_np_dtype(elem))
                w = session(p).run(["W"], {"A": eye})[0]
                info = {"op": "MatMulNBits", "shape": list(w.shape), "bits": int(at["bits"]),
                        "block_size": int(at["block_size"]),
                        "zero_points": ("none" if len(ins) < 3 or not ins[2] else
                                        "packed uint8" if inits[ins[2]].data_type == TensorProto.UINT8 else "float")}
                if len(ins) < 4 or not ins[3]:  # no g_idx: compare with the numpy reference
                    arrs = [numpy_helper.to_array(inits[i]) if i else None for i in ins[:3]]
                    refs = matmulnbits_reference(at, arrs)
                    diffs = {k: float(np.max(np.abs(w.astype(np.float32) - r))) for k, r in refs.items()}
                    info["max_abs_diff_vs_numpy"] = diffs["(q-zp)*s"]
                    info["max_abs_diff_by_formula"] = diffs
                    info["bit_exact_formulas"] = [k for k, r in refs.items() if np.array_equal(w, r)]
                result[key] = w
                report[key] = info
            elif node.op_type == "DequantizeLinear" and node.domain in ("", "ai.onnx"):
                ins = list(node.input)
                if not all(i in inits for i in ins if i):
                    continue
                blocked = int(at.get("block_size", 0)) > 0 or inits[ins[0]].data_type in LOW_BIT
                if not (blocked or a.all_dq):
                    continue
                out_elem = TensorProto.FLOAT
                if "output_dtype" in at and at["output_dtype"]:
                    out_elem = at["output_dtype"]
                elif len(ins) > 1:
                    out_elem = inits[ins[1]].data_type
                m = tiny_model(model, helper.make_node("DequantizeLinear", ins, ["W"], name=key, **at), ins,
                               [inits[i] for i in ins if i], [],
                               [helper.make_tensor_value_info("W", out_elem, None)])
                p = os.path.join(tmp, f"probe{idx}.onnx")
                onnx.save_model(m, p)
                w = session(p, optimize=False).run(["W"], {})[0]
                x = numpy_helper.to_array(inits[ins[0]])
                scale = numpy_helper.to_array(inits[ins[1]])
                zp = numpy_helper.to_array(inits[ins[2]]) if len(ins) > 2 and ins[2] else None
                ref = dq_reference(at, x, scale, zp)  # int4 / uint4 arrays are ml_dtypes: astype works
                result[key] = w
                report[key] = {"op": "DequantizeLinear", "shape": list(w.shape),
                               "type": TensorProto.DataType.Name(inits[ins[0]].data_type),
                               "axis": int(at.get("axis", 1)), "block_size": int(at.get("block_size", 0)),
                               "max_abs_diff_vs_numpy": float(np.max(np.abs(w.astype(np.float32) - ref))),
                               "bit_exact_formulas": ["(x-zp)*s"] if np.array_equal(w, ref) else []}
    np.savez(out_path, **result)
    print(json.dumps({"out": out_path, "nodes": report}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("quantize")
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--algorithm", choices=["rtn", "rtn-inc", "hqq", "gptq"], default="rtn")
    p.add_argument("--bits", type=int, default=4, choices=[2, 4, 8])
    p.add_argument("--block-size", type=int, default=32)
    p.add_argument("--symmetric", action="store_true")
    p.add_argument("--format", choices=["qoperator", "qdq"], default="qoperator")
    p.add_argument("--no-convert", action="store_true",
                   help="qdq: keep ORT's plain opset bump to 21 (no onnx.version_converter first)")
    p.add_argument("--accuracy-level", type=int, default=None,
                   help="MatMulNBits accuracy_level attribute (rtn; default: none written)")
    p.add_argument("--calib", help="calibration .npz (gptq)")
    p.add_argument("--calib-batch", type=int, default=1, help="samples per calibration batch (gptq)")
    p.add_argument("--gptq-blocksize", type=int, default=128, help="GPTQ's column block (not the group size)")
    p.add_argument("--percdamp", type=float, default=0.01)
    p.add_argument("--gptq-fix", action="store_true",
                   help="gptq: patch ORT's Cholesky-factor transposition bug (see fix_gptq_cholesky)")
    p.add_argument("--torch-shim", action="store_true",
                   help="hqq without PyTorch: run ORT's HQQ code on a numpy stand-in (see install_torch_shim)")
    p.add_argument("--actorder", action="store_true")
    p.add_argument("--mse", action="store_true")
    p = sub.add_parser("compare")
    p.add_argument("float")
    p.add_argument("quant")
    p.add_argument("eval")
    p.add_argument("--labels", action="store_true", help="fail if EVAL has no 'labels'")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--output", help="output to compare (default: the first)")
    p = sub.add_parser("weights")
    p.add_argument("model")
    p.add_argument("out", nargs="?")
    p.add_argument("--all-dq", action="store_true", help="every DequantizeLinear of a constant, not only blocked ones")
    a = ap.parse_args()
    {"quantize": cmd_quantize, "compare": cmd_compare, "weights": cmd_weights}[a.cmd](a)


if __name__ == "__main__":
    main()
