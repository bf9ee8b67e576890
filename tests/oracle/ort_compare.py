"""Oracle: run a float model and a quantized model in ONNX Runtime on an .npz evaluation set and
print JSON with both models' predictions (argmax of the first output), accuracies (when the set
has labels) and the quantized output's SQNR against the float output.

Usage: ort_compare.py FLOAT.onnx QUANT.onnx EVAL.npz [--per-sample]
(--per-sample runs one sample per call, as dynamic quantization's per-batch ranges need to match
QuantBench's batch-1 simulation)
"""
import json
import sys

import numpy as np
import onnxruntime as ort
from feeds import feeds as input_feeds


def run(path, arrays, per_sample=False):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feeds = input_feeds(sess, arrays)
    if not per_sample:
        return sess.run(None, feeds)[0]
    n = len(next(iter(feeds.values())))
    return np.concatenate([sess.run(None, {k: v[i:i + 1] for k, v in feeds.items()})[0] for i in range(n)])


def main():
    float_path, quant_path, data = sys.argv[1:4]
    per_sample = "--per-sample" in sys.argv[4:]
    arrays = np.load(data)
    f = run(float_path, arrays).astype(np.float64)
    q = run(quant_path, arrays, per_sample).astype(np.float64)
    err = float(np.sum((f - q) ** 2))
    sqnr = 200.0 if err == 0 else float(10 * np.log10(np.sum(f**2) / err))
    out = {
        "float_predictions": f.reshape(len(f), -1).argmax(1).tolist(),
        "quant_predictions": q.reshape(len(q), -1).argmax(1).tolist(),
        "output_sqnr_db": sqnr,
    }
    if "labels" in arrays:
        labels = arrays["labels"]
        out["float_accuracy"] = float(np.mean(np.array(out["float_predictions"]) == labels))
        out["quant_accuracy"] = float(np.mean(np.array(out["quant_predictions"]) == labels))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
