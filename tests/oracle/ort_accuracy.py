"""Oracle for labelled sets: the top-1 accuracy, in ONNX Runtime, of the float model, of
QuantBench's export and of ONNX Runtime's own quantize_static export (per-channel, MinMax, made
here from the same calibration set), on the same labelled evaluation set (an int64 `labels`
array; top-1 = argmax of the first output of each sample), and how many of the activation
tensors of the float model quantize_static quantizes QuantBench's export quantizes, and with the
same (scale, zero point).
Prints JSON {"samples": N, "float": acc, "ours": acc, "ort": acc, "coverage": {"reference": N,
"common": N, "same_qparams": N}} with accuracies in percent.

Usage: ort_accuracy.py FLOAT.onnx OURS.onnx CALIB.npz EVAL.npz
"""
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from feeds import feeds as input_feeds  # noqa: E402
from ort_quantize_timed import ort_quantize  # noqa: E402
from qdq_compare import activation_qparams  # noqa: E402


def accuracy(model, arrays, labels):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    feeds = input_feeds(sess, arrays)
    first = sess.get_outputs()[0].name
    hits = sum(int(np.argmax(sess.run([first], {k: v[i:i + 1] for k, v in feeds.items()})[0]) == labels[i])
               for i in range(len(labels)))
    return 100.0 * hits / len(labels)


def main():
    float_model, ours, calib, eval_set = sys.argv[1:5]
    arrays = np.load(eval_set)
    labels = arrays["labels"]
    with tempfile.TemporaryDirectory() as tmp:
        theirs = os.path.join(tmp, "ort_qdq.onnx")
        ort_quantize(float_model, calib, theirs, "minmax", per_channel=True)
        result = {"samples": len(labels), "float": accuracy(float_model, arrays, labels),
                  "ours": accuracy(ours, arrays, labels), "ort": accuracy(theirs, arrays, labels)}
        # The float model's activations: tensors computed from its inputs (converting an opset < 13
        # model first, ORT's version_converter adds tensors of its own; and ORT also quantizes
        # constant subexpressions such as Reshape(Constant), which QuantBench leaves float —
        # reported apart as "constant_subexpressions").
        g = onnx.load(float_model).graph
        inits = {t.name for t in g.initializer}
        names = {i.name for i in g.input if i.name not in inits}
        for n in g.node:
            if any(i in names for i in n.input):
                names.update(n.output)
        everything = {t for n in g.node for t in n.output}
        ref = {t: p for t, p in activation_qparams(theirs).items() if t in names}
        got = activation_qparams(ours)
        same = sum(1 for t, (s, z) in ref.items()
                   if t in got and np.isclose(got[t][0], s, rtol=1e-6) and got[t][1] == z)
        constant = [t for t in activation_qparams(theirs) if t in everything and t not in names]
        result["coverage"] = {"reference": len(ref), "common": len(set(ref) & set(got)), "same_qparams": same,
                              "constant_subexpressions": len(constant)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
