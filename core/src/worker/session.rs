//! The worker's state: the model, data sets, recipe (with its revision) and the cached float
//! reference. Every change goes through a method that checks it first, so a rejected change
//! leaves the session as it was.

use std::sync::Arc;

use super::DataRole;
use super::error::JobError;
use crate::Error;
use crate::calibrate::Calibration;
use crate::data::{DataSet, DataSource, InputShape};
use crate::model::OnnxModel;
use crate::plan::Measured;
use crate::quant::LayerConfig;
use crate::quant::recipe::Recipe;
use crate::simulate::{EvalConfig, SimState, Simulator};

const NO_MODEL: &str = "no model is loaded: load a model first";
const NO_CALIBRATION_SET: &str = "no calibration data is loaded: load a calibration set first";
const NO_EVALUATION_SET: &str = "no evaluation data is loaded: load an evaluation set first";

/// A float reference, what it was built from, and the state of the last evaluation on it (so
/// the next one re-runs only what a change affects).
#[derive(Debug)]
struct CachedSimulator {
    simulator: Arc<Simulator>,
    generation: u64,
    input_shapes: Vec<InputShape>,
    last_state: Option<Arc<SimState>>,
    /// The reference on the estimating subset, and the last evaluation's state on it.
    estimate: Option<(Arc<Simulator>, Option<Arc<SimState>>)>,
}

/// Everything the user has set up.
#[derive(Debug)]
pub(crate) struct Session {
    /// The model the simulator and exports use: the loaded one, or its transform by the
    /// recipe's algorithms (CLE, SmoothQuant) at the last calibration.
    model: Option<Arc<OnnxModel>>,
    /// The model as loaded (transforms always start from it).
    loaded: Option<Arc<OnnxModel>>,
    calibration_set: Option<Arc<DataSet>>,
    evaluation_set: Option<Arc<DataSet>>,
    recipe: Recipe,
    /// What was measured for the recipe (calibration, refinements), held beside it.
    measured: Measured,
    /// Incremented on every change of the recipe (config changes, calibration, new model).
    revision: u64,
    /// Incremented whenever the model or the evaluation set changes (invalidates the float
    /// reference).
    generation: u64,
    simulator: Option<CachedSimulator>,
    /// Memory budget of the incremental cache in MiB (0: the default).
    cache_budget_mib: usize,
}

/// What an evaluation job needs, snapshotted when it starts.
#[derive(Debug)]
pub(crate) struct EvaluationInputs {
    /// The model in use.
    pub model: Arc<OnnxModel>,
    /// The evaluation set.
    pub data: Arc<DataSet>,
    /// The recipe.
    pub recipe: Recipe,
    /// What was measured for it.
    pub measured: Measured,
    /// Evaluation settings.
    pub config: EvalConfig,
    /// The cached float reference, when still valid.
    pub simulator: Option<Arc<Simulator>>,
    /// The state of the last evaluation on that reference (for an incremental evaluation).
    pub previous: Option<Arc<SimState>>,
    /// That reference on the estimating subset, with its last state (progressive evaluation).
    pub estimate: Option<(Arc<Simulator>, Option<Arc<SimState>>)>,
    /// The recipe revision.
    pub revision: u64,
}

impl Session {
    /// An empty session.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::with_cache_budget(0)
    }

    /// An empty session whose evaluations cache at most `cache_budget_mib` MiB (0: the default).
    pub(crate) fn with_cache_budget(cache_budget_mib: usize) -> Self {
        Self {
            model: None,
            loaded: None,
            calibration_set: None,
            evaluation_set: None,
            recipe: Recipe::new(""),
            measured: Measured::default(),
            revision: 0,
            generation: 0,
            simulator: None,
            cache_budget_mib,
        }
    }

    /// The current recipe.
    pub(crate) fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// The current recipe revision.
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    /// The current model/evaluation-set generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    fn model(&self) -> Result<&Arc<OnnxModel>, JobError> {
        self.model.as_ref().ok_or(JobError::Missing(NO_MODEL))
    }

    /// Whether a config change should trigger an evaluation: a model, a calibration (unless
    /// weights only) and an evaluation set are present.
    pub(crate) fn can_auto_evaluate(&self) -> bool {
        self.model.is_some()
            && self.evaluation_set.is_some()
            && (self.measured.calibration.is_some() || self.recipe.weights_only)
    }

    /// Starts over with `model`: fresh recipe, no data sets, no float reference.
    pub(crate) fn replace_model(&mut self, model: OnnxModel) {
        self.recipe = Recipe::for_local_runtime(&model.summary.name);
        self.measured = Measured::default();
        let model = Arc::new(model);
        self.loaded = Some(Arc::clone(&model));
        self.model = Some(model);
        self.calibration_set = None;
        self.evaluation_set = None;
        self.simulator = None;
        self.revision += 1;
        self.generation += 1;
    }

    /// Sets the evaluations' memory budget; a changed budget drops the cached float reference
    /// (and its incremental states), so the next evaluation keeps what the new budget allows.
    pub(crate) fn set_cache_budget(&mut self, mib: usize) {
        if mib != self.cache_budget_mib {
            self.cache_budget_mib = mib;
            self.simulator = None;
        }
    }

    /// Opens a data set against the model; returns (samples, has labels).
    pub(crate) fn load_data(&mut self, role: DataRole, source: DataSource) -> Result<(usize, bool), JobError> {
        let model = self.model()?;
        let set = DataSet::open(source, &model.summary.inputs)?;
        let answer = (set.num_samples, set.labels.is_some());
        match role {
            DataRole::Calibration => self.calibration_set = Some(Arc::new(set)),
            DataRole::Evaluation => {
                self.evaluation_set = Some(Arc::new(set));
                self.simulator = None;
                self.generation += 1;
            }
        }
        Ok(answer)
    }

    /// Replaces the recipe; a `calibration` that comes with it (a recipe file's) replaces the
    /// current one and its refinements, else both are kept.
    pub(crate) fn set_recipe(
        &mut self,
        mut recipe: Recipe,
        calibration: Option<Arc<Calibration>>,
    ) -> Result<u64, JobError> {
        recipe.adopt_names(&self.model()?.summary);
        recipe.validate(&self.model()?.summary)?;
        self.recipe = recipe;
        if let Some(calibration) = calibration {
            self.measured = Measured { calibration: Some(calibration), refinements: Arc::default() };
        }
        Ok(self.bump())
    }

    /// Sets or removes the override of `layer`.
    pub(crate) fn update_layer(&mut self, layer: String, config: Option<LayerConfig>) -> Result<u64, JobError> {
        let summary = &self.model()?.summary;
        if summary.layer(&layer).is_none() {
            return Err(Error::Config(format!("'{layer}' is not a quantizable layer of '{}'", summary.name)).into());
        }
        match config {
            Some(config) => {
                config.validate().map_err(|e| Error::Config(format!("layer '{layer}': {e}")))?;
                self.recipe.layers.insert(layer, config);
            }
            None => {
                self.recipe.layers.remove(&layer);
            }
        }
        Ok(self.bump())
    }

    /// Replaces the defaults.
    pub(crate) fn set_defaults(&mut self, config: LayerConfig) -> Result<u64, JobError> {
        self.model()?;
        config.validate()?;
        self.recipe.defaults = config;
        Ok(self.bump())
    }

    /// Stores what a finished calibration measured (the calibration and what the layer-wise
    /// algorithms computed), with the model it was made on (the loaded one or its transform).
    pub(crate) fn set_calibration(&mut self, measured: Measured, model: Arc<OnnxModel>) -> u64 {
        if !self.model.as_ref().is_some_and(|m| Arc::ptr_eq(m, &model)) {
            // A different float model: the float reference must be rebuilt.
            self.model = Some(model);
            self.simulator = None;
            self.generation += 1;
        }
        self.measured = measured;
        self.bump()
    }

    fn bump(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    /// What was measured for the recipe.
    #[cfg(test)]
    pub(crate) fn measured(&self) -> &Measured {
        &self.measured
    }

    /// The model, a copy of the recipe and what was measured for it, for an export.
    pub(crate) fn export_inputs(&self) -> Result<(Arc<OnnxModel>, Recipe, Measured), JobError> {
        Ok((Arc::clone(self.model()?), self.recipe().clone(), self.measured.clone()))
    }

    /// The model as loaded (transforms start from it), the calibration set and the recipe.
    pub(crate) fn calibration_inputs(&self) -> Result<(Arc<OnnxModel>, Arc<DataSet>, Recipe), JobError> {
        let model = self.loaded.clone().map_or_else(|| self.model().cloned(), Ok)?;
        let data = self.calibration_set.clone().ok_or(JobError::Missing(NO_CALIBRATION_SET))?;
        Ok((model, data, self.recipe.clone()))
    }

    /// What an evaluation job needs.
    pub(crate) fn evaluation_inputs(&self) -> Result<EvaluationInputs, JobError> {
        let model = Arc::clone(self.model()?);
        let data = self.evaluation_set.clone().ok_or(JobError::Missing(NO_EVALUATION_SET))?;
        let config = EvalConfig {
            input_shapes: self.input_shapes().to_vec(),
            cache_budget_mib: self.cache_budget_mib,
            ..EvalConfig::default()
        };
        let cached = self
            .simulator
            .as_ref()
            .filter(|c| c.generation == self.generation && c.input_shapes == config.input_shapes);
        let simulator = cached.map(|c| Arc::clone(&c.simulator));
        let previous = cached.and_then(|c| c.last_state.clone());
        let estimate = cached.and_then(|c| c.estimate.clone());
        let (recipe, measured, revision) = (self.recipe.clone(), self.measured.clone(), self.revision);
        Ok(EvaluationInputs { model, data, recipe, measured, config, simulator, previous, estimate, revision })
    }

    /// Keeps a float reference built for `generation` with `input_shapes`, if that is still the
    /// current generation.
    pub(crate) fn store_simulator(
        &mut self,
        simulator: Arc<Simulator>,
        generation: u64,
        input_shapes: Vec<InputShape>,
    ) {
        if generation == self.generation {
            self.simulator =
                Some(CachedSimulator { simulator, generation, input_shapes, last_state: None, estimate: None });
        }
    }

    /// Keeps the state of a finished evaluation on the cached float reference `simulator` (any
    /// finished state is a valid starting point for the next evaluation, superseded or not), and
    /// the estimating subset's reference with the state of its estimate.
    pub(crate) fn store_state(
        &mut self,
        simulator: &Arc<Simulator>,
        state: SimState,
        estimate: Option<(Arc<Simulator>, SimState)>,
    ) {
        if let Some(c) = self.simulator.as_mut().filter(|c| Arc::ptr_eq(&c.simulator, simulator)) {
            c.last_state = Some(Arc::new(state));
            if let Some((sub, state)) = estimate {
                c.estimate = Some((sub, Some(Arc::new(state))));
            }
        }
    }

    /// The input shapes of the recipe (for dynamic dims the data cannot fix).
    fn input_shapes(&self) -> &[InputShape] {
        &self.recipe.calibration_config.input_shapes
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn sample(file: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sample_models/mlp").join(file)
    }

    fn loaded() -> Session {
        let mut s = Session::new();
        s.replace_model(OnnxModel::load(&sample("model.onnx")).expect("model"));
        s
    }

    #[test]
    fn missing_state_is_named() {
        let mut s = Session::new();
        let err = s.set_defaults(LayerConfig::default()).expect_err("no model");
        assert_eq!(err.to_string(), NO_MODEL);
        let s = loaded();
        assert_eq!(s.calibration_inputs().expect_err("no set").to_string(), NO_CALIBRATION_SET);
        assert_eq!(s.evaluation_inputs().expect_err("no set").to_string(), NO_EVALUATION_SET);
        assert!(!s.can_auto_evaluate());
    }

    #[test]
    fn rejected_changes_leave_the_recipe_alone() {
        let mut s = loaded();
        let before = (s.recipe().clone(), s.revision());
        let err = s.update_layer("nope".into(), Some(LayerConfig::default())).expect_err("unknown layer");
        assert!(err.to_string().contains("'nope' is not a quantizable layer of 'mlp'"), "{err}");
        let mut bad = LayerConfig::default();
        bad.weight.bits = 1;
        let layer = s.model.as_ref().expect("model").summary.layers[0].name.clone();
        let err = s.update_layer(layer.clone(), Some(bad)).expect_err("bad bits");
        assert!(err.to_string().contains(&format!("layer '{layer}': ")), "{err}");
        assert!(s.set_defaults(bad).is_err());
        assert_eq!((s.recipe().clone(), s.revision()), before);
        let r = s.update_layer(layer.clone(), Some(LayerConfig { keep_float: true, ..LayerConfig::default() }));
        assert_eq!(r.expect("valid"), before.1 + 1);
        assert!(s.recipe().config_for(&layer).keep_float);
        s.update_layer(layer.clone(), None).expect("remove");
        assert!(!s.recipe().config_for(&layer).keep_float);
    }

    #[test]
    fn set_recipe_keeps_the_calibration_when_the_new_one_has_none() {
        let mut s = loaded();
        let cal = Calibration { num_samples: 7, ..Calibration::default() };
        let generation = s.generation();
        let model = Arc::clone(s.model().expect("model"));
        s.set_calibration(Measured::calibrated(cal.clone()), model);
        assert_eq!(s.generation(), generation, "same model: the float reference stays");
        let mut r = Recipe::new("mlp");
        r.defaults.weight.bits = 4;
        s.set_recipe(r, None).expect("valid");
        assert_eq!(s.measured().calibration.as_deref(), Some(&cal));
        assert_eq!(s.recipe().defaults.weight.bits, 4);
        let other = Calibration { num_samples: 9, ..Calibration::default() };
        s.set_recipe(Recipe::new("mlp"), Some(Arc::new(other))).expect("valid");
        assert_eq!(s.measured().calibration.as_ref().map(|c| c.num_samples), Some(9));
    }

    #[test]
    fn a_new_evaluation_set_invalidates_the_float_reference() {
        let mut s = loaded();
        s.load_data(DataRole::Evaluation, DataSource::Npz(sample("eval.npz"))).expect("eval");
        let g = s.generation();
        let inputs = s.evaluation_inputs().expect("inputs");
        assert!(inputs.simulator.is_none());
        let never = std::sync::atomic::AtomicBool::new(false);
        let sim = Simulator::new(&inputs.model, &inputs.data, &inputs.config, &never).expect("simulator");
        s.store_simulator(Arc::new(sim), g, Vec::new());
        assert!(s.evaluation_inputs().expect("inputs").simulator.is_some());
        let (n, labels) = s.load_data(DataRole::Evaluation, DataSource::Npz(sample("eval.npz"))).expect("eval");
        assert_eq!((n, labels), (397, true));
        assert!(s.evaluation_inputs().expect("inputs").simulator.is_none());
    }
}
