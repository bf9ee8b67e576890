"""Oracle: run an ONNX model in ONNX Runtime on every sample of an .npz set, one sample per call
(batch 1, which fixed-batch and symbolic-batch models both take), and save every output, stacked
on a new first axis (sample i is [i], whatever axis the model puts its batch on: a CRNN's
[T, 1, classes] stays whole) and keyed by output name, to an .npz.

Usage: ort_run.py MODEL.onnx DATA.npz OUT.npz
"""
import sys

import numpy as np
import onnxruntime as ort
from feeds import feeds as input_feeds


def main() -> None:
    model, data, out = sys.argv[1:4]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    arrays = np.load(data)
    feeds = input_feeds(sess, arrays)
    names = [o.name for o in sess.get_outputs()]
    n = len(next(iter(feeds.values())))
    runs = [sess.run(names, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(n)]
    np.savez(out, **{name: np.stack([r[j] for r in runs]).astype(np.float32) for j, name in enumerate(names)})


if __name__ == "__main__":
    main()
