//! Diagnostic: where does QuantBench's simulation part from ONNX Runtime? Writes the simulated
//! graph of MODEL under a saved recipe (`--save-recipe` of calibrate/quantize, with its
//! calibration) as an ONNX file, and the value of every node output in tract on the first sample
//! of DATA. `tests/oracle/sim_tensors_compare.py` then runs the same graph in ONNX Runtime and
//! prints the first tensors that differ (the simulation's float ops are ONNX ops, so any
//! difference is tract's arithmetic against ORT's, not the quantization).
//!
//! Run: `cargo run -p quantbench-tests --bin sim_tensors -- MODEL RECIPE.json DATA.npz SIM.onnx TENSORS.npz`

use quantbench_tests::sim_tensors::sim_tensors;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, recipe, data, sim, tensors] = args.as_slice() else {
        eprintln!("usage: sim_tensors MODEL RECIPE.json DATA.npz SIM.onnx TENSORS.npz");
        std::process::exit(2);
    };
    if let Err(e) = sim_tensors(model.as_ref(), recipe.as_ref(), data.as_ref(), sim.as_ref(), tensors.as_ref()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
