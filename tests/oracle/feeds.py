"""Feeds for an ONNX Runtime session from an .npz set: each input's array cast to the element
type the model declares (float32 for float inputs; int64, int32, bool, ... for token ids, masks
and byte values, which QuantBench passes through unquantized)."""
import numpy as np

_TYPES = {
    "tensor(float)": np.float32,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint16)": np.uint16,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def feeds(sess, arrays):
    """{input name: array} for every input of `sess`, in its declared element type."""
    return {i.name: np.asarray(arrays[i.name]).astype(_TYPES.get(i.type, np.float32)) for i in sess.get_inputs()}
