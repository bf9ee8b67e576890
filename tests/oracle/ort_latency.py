"""ONNX Runtime CPU latency (batch 1, default graph optimisations) of several models on the first
sample of an .npz set, at 1 and 2 intra-op threads. The models are timed in interleaved rounds
(one run of each per round, after WARMUP rounds), so that a slow phase of a shared machine hits
them alike; each figure is the median of ROUNDS runs.

Usage: ort_latency.py [--rounds N] DATA.npz MODEL.onnx [MODEL.onnx ...]
Prints JSON: {model path: {"1": seconds, "2": seconds}}.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

from feeds import feeds

WARMUP, ROUNDS = 3, 21


def latencies(paths, arrays, threads, rounds=ROUNDS):
    """Median seconds per run of each model in `paths`, interleaved."""
    runs = []
    for path in paths:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        runs.append((sess, {k: v[:1] for k, v in feeds(sess, arrays).items()}))
    times = [[] for _ in paths]
    for r in range(WARMUP + rounds):
        for i, (sess, feed) in enumerate(runs):
            start = time.perf_counter()
            sess.run(None, feed)
            if r >= WARMUP:
                times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def main():
    args = sys.argv[1:]
    rounds = ROUNDS
    if args[:1] == ["--rounds"]:
        rounds, args = int(args[1]), args[2:]
    data, models = args[0], args[1:]
    arrays = dict(np.load(data))
    by_threads = {t: latencies(models, arrays, t, rounds) for t in (1, 2)}
    print(json.dumps({m: {str(t): by_threads[t][i] for t in (1, 2)} for i, m in enumerate(models)}))


if __name__ == "__main__":
    main()
