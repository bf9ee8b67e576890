//! The simulated graph of a model under a saved recipe, and the value of every node output in
//! tract on the first sample of a data set: what `tests/oracle/sim_tensors_compare.py` (tract vs
//! ORT on the same graph) and `tests/oracle/qdq_codes.py` (the simulation's integer codes vs the
//! export's in ORT) read.

use std::path::Path;

use ndarray_npy::NpzWriter;
use prost::Message;
use quantbench_core::calibrate::RecipeFile;
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::OnnxModel;
use quantbench_core::model::runtime::Runner;
use quantbench_core::plan::{Measured, PlanFilter, QuantPlan};
use quantbench_core::simulate::graph::simulated_proto;

/// Writes the simulated graph of `model` under `recipe` (with its calibration) to `sim` and every
/// node output on the first sample of `data` to `tensors` (.npz).
pub fn sim_tensors(model: &Path, recipe: &Path, data: &Path, sim: &Path, tensors: &Path) -> Result<(), String> {
    let model = OnnxModel::load(model).map_err(|e| e.to_string())?;
    let saved = RecipeFile::load(recipe).map_err(|e| e.to_string())?;
    let measured = Measured { calibration: saved.calibration.map(std::sync::Arc::new), ..Measured::default() };
    let plan = QuantPlan::build(&model, &saved.recipe, &measured, &PlanFilter::default()).map_err(|e| e.to_string())?;
    let proto = simulated_proto(&model, &plan).map_err(|e| e.to_string())?;
    std::fs::write(sim, proto.encode_to_vec()).map_err(|e| format!("{}: {e}", sim.display()))?;
    let graph = proto.graph.as_ref().ok_or("no graph")?;
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let extra: Vec<String> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().cloned())
        .filter(|o| !o.is_empty() && !outputs.contains(&o.as_str()))
        .collect();
    let set = DataSet::open(DataSource::Npz(data.to_path_buf()), &model.summary.inputs).map_err(|e| e.to_string())?;
    let shapes: Vec<Vec<usize>> = set.sample_shapes.iter().map(|s| [&[1][..], s].concat()).collect();
    let runner = Runner::from_proto(&proto, &model, &shapes, &extra).map_err(|e| e.to_string())?;
    let batch = set.batches(1).map_err(|e| e.to_string())?.next().ok_or("no samples")?.map_err(|e| e.to_string())?;
    let values = runner.run(batch.inputs).map_err(|e| e.to_string())?;
    let file = std::fs::File::create(tensors).map_err(|e| format!("{}: {e}", tensors.display()))?;
    let mut npz = NpzWriter::new(file);
    for (name, v) in runner.output_names.iter().zip(values) {
        npz.add_array(name.as_str(), &v).map_err(|e| e.to_string())?;
    }
    npz.finish().map_err(|e| e.to_string())?;
    Ok(())
}
