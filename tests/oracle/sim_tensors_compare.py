"""Diagnostic: run the simulated graph written by the `sim_tensors` binary in ONNX Runtime (graph
optimisations off, one thread) on the first sample of DATA, with every node output exposed, and
print, in graph order, the first tensors whose values differ from tract's (TENSORS.npz). The f64
intermediates of the simulation's exact division are skipped: tract reports them as f32, and
only their rounded f32 result has to agree.

Usage: sim_tensors_compare.py SIM.onnx TENSORS.npz DATA.npz [COUNT]
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
from feeds import feeds as input_feeds


def main() -> None:
    sim, tensors, data = sys.argv[1:4]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 30
    model = onnx.shape_inference.infer_shapes(onnx.load(sim))
    tract = np.load(tensors)
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    declared = {o.name for o in model.graph.output}
    order = []
    for n in model.graph.node:
        for o in n.output:
            if o in tract.files and not o.endswith(("/quotient", "_f64")):
                if o not in declared:
                    model.graph.output.append(onnx.helper.make_tensor_value_info(o, types.get(o, 1), None))
                order.append((o, n.op_type))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {k: v[:1] for k, v in input_feeds(sess, np.load(data)).items()}
    names = [o.name for o in sess.get_outputs()]
    ours = dict(zip(names, sess.run(names, feeds)))
    shown = 0
    for name, op in order:
        a, b = ours[name].astype(np.float64), tract[name].astype(np.float64)
        if a.shape != b.shape:
            print(f"{op:18s} {name}: shape ORT {a.shape}, tract {b.shape}")
            continue
        diff = np.abs(a - b)
        if diff.max(initial=0) > 0:
            rel = diff.max() / (np.abs(a).max() + 1e-30)
            print(f"{op:18s} {name[:64]:64s} {int((diff > 0).sum())}/{a.size} differ, max {diff.max():.3g} ({rel:.2g} of its range)")
            shown += 1
            if shown >= count:
                break
    if shown == 0:
        print("tract and ONNX Runtime agree on every tensor")


if __name__ == "__main__":
    main()
