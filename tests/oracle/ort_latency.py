"""ONNX Runtime CPU latency (batch 1, default graph optimisations) of several models on the first
sample of an .npz set, at 1 and 2 intra-op threads: the median of RUNS timed runs after WARMUP.

Usage: ort_latency.py DATA.npz MODEL.onnx [MODEL.onnx ...]
Prints JSON: {model path: {"1": seconds, "2": seconds}}.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

from feeds import feeds

WARMUP, RUNS = 3, 15


def latency(path, arrays, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {k: v[:1] for k, v in feeds(sess, arrays).items()}
    for _ in range(WARMUP):
        sess.run(None, feed)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    data, models = sys.argv[1], sys.argv[2:]
    arrays = dict(np.load(data))
    print(json.dumps({m: {str(t): latency(m, arrays, t) for t in (1, 2)} for m in models}))


if __name__ == "__main__":
    main()
