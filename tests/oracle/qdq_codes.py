"""Oracle: the integer codes of every quantized activation, QuantBench's simulation (tract) vs its
QDQ export run in ONNX Runtime with all graph optimisations (so through the fused QLinear*
kernels), on the first sample of DATA. TENSORS.npz is written by `quantbench_tests::sim_tensors`
(the simulation's fake-quantized tensor t is `t/qb_fq`, on the grid of t's QuantizeLinear in the
export, whose scale and zero point give its codes; the export's are that QuantizeLinear's output).

Usage: qdq_codes.py EXPORT.onnx TENSORS.npz DATA.npz
Prints JSON: {"compared": N, "mismatched": [[tensor, differing values, values, max |difference|], ...]}
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from feeds import feeds


def main():
    export, tensors, data = sys.argv[1:4]
    sim = np.load(tensors)
    m = onnx.load(export)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    pairs = [(n.input[0], n.output[0], n.input[1], n.input[2]) for n in m.graph.node
             if n.op_type == "QuantizeLinear" and f"{n.input[0]}/qb_fq" in sim.files
             and n.input[1] in inits and len(n.input) > 2 and n.input[2] in inits]
    declared = {o.name for o in m.graph.output}
    for _, q, _, _ in pairs:
        if q not in declared:
            m.graph.output.append(onnx.helper.make_tensor_value_info(q, onnx.TensorProto.UINT8, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {k: v[:1] for k, v in feeds(sess, np.load(data)).items()}
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    mismatched = []
    for t, q, scale, zero_point in pairs:
        # The simulated values are on the grid: (code - z) * s, so v / s rounds to code - z exactly.
        values = sim[f"{t}/qb_fq"].astype(np.float32)
        codes = np.rint(values / inits[scale].astype(np.float32)).astype(np.int64) + int(inits[zero_point])
        d = np.abs(codes - got[q].astype(np.int64).reshape(codes.shape))
        if d.max() > 0:
            mismatched.append([t, int((d > 0).sum()), int(d.size), int(d.max())])
    print(json.dumps({"compared": len(pairs), "mismatched": mismatched}))


if __name__ == "__main__":
    main()
