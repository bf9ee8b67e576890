"""Oracle: run an ONNX model in ONNX Runtime on every sample of an .npz set; save the first
output as .npy. Usage: run_model.py MODEL.onnx DATA.npz OUT.npy"""
import sys

import numpy as np
import onnxruntime as ort
from feeds import feeds as input_feeds


def main() -> None:
    model, data, out = sys.argv[1:4]
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    arrays = np.load(data)
    feeds = input_feeds(sess, arrays)
    result = sess.run(None, feeds)[0]
    np.save(out, result.astype(np.float32))


if __name__ == "__main__":
    main()
