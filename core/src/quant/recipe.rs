//! The recipe: the user's configuration (global defaults, per-layer overrides, runtime,
//! calibration and algorithm settings), as versioned JSON that saves and reloads losslessly.
//! What is measured for it (calibration statistics, refinements) is held beside it, not in it;
//! `calibrate::RecipeFile` is the file that embeds the calibration for reload.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::algorithm_settings::AlgorithmSettings;
use super::calibration_config::CalibrationConfig;
use super::runtime::RuntimeProfile;
use super::scheme::LayerConfig;
use super::target::{Target, WeightFormat};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::model::ModelSummary;

/// The recipe format version this build writes and the newest it reads.
pub const RECIPE_VERSION: u32 = 1;

/// A user's full quantization configuration for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Format version.
    pub version: u32,
    /// Name of the model the recipe was made for.
    pub model: String,
    /// The runtime whose integer arithmetic the simulation reproduces (recipes written before
    /// profiles existed get the local CPU's).
    #[serde(default = "RuntimeProfile::detect")]
    pub runtime: RuntimeProfile,
    /// Where the export places Q/DQ (recipes written before targets existed get ONNX Runtime's).
    #[serde(default)]
    pub target: Target,
    /// Op types kept float everywhere (ORT's `op_types_to_quantize`, inverted): their layers are
    /// not quantized and the placement target marks nothing for their nodes.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub float_ops: BTreeSet<String>,
    /// Nodes kept float by name (ORT's `nodes_to_exclude`), layers or not.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub float_nodes: BTreeSet<String>,
    /// Weight-only quantization: every activation stays float (no calibration is needed unless
    /// an algorithm learns from data), only the layers' weights are quantized.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub weights_only: bool,
    /// How block-wise weights are written on export.
    #[serde(default, skip_serializing_if = "is_qdq")]
    pub weight_format: WeightFormat,
    /// Configuration of every layer without an override.
    pub defaults: LayerConfig,
    /// Per-layer overrides, by layer (node) name.
    #[serde(default)]
    pub layers: BTreeMap<String, LayerConfig>,
    /// How calibration is run.
    #[serde(default)]
    pub calibration_config: CalibrationConfig,
    /// Settings of the advanced algorithms the layers select (boxed: recipes travel in worker
    /// commands).
    #[serde(default)]
    pub algorithm_settings: Box<AlgorithmSettings>,
}

/// Whether `f` is the default format (not written to recipe files).
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference.
fn is_qdq(f: &WeightFormat) -> bool {
    *f == WeightFormat::Qdq
}

impl Recipe {
    /// A recipe with ONNX Runtime's defaults for `model`, simulated with exact integer arithmetic
    /// ([`RuntimeProfile::Reference`]).
    pub fn new(model: &str) -> Self {
        Self {
            version: RECIPE_VERSION,
            model: model.to_string(),
            runtime: RuntimeProfile::Reference,
            target: Target::default(),
            float_ops: BTreeSet::new(),
            float_nodes: BTreeSet::new(),
            weights_only: false,
            weight_format: WeightFormat::Qdq,
            defaults: LayerConfig::default(),
            layers: BTreeMap::new(),
            calibration_config: CalibrationConfig::default(),
            algorithm_settings: Box::default(),
        }
    }

    /// A recipe for `model` that will run on `runtime`: ONNX Runtime's defaults, except that
    /// where the runtime saturates 8-bit weight products (x86 without VNNI) the weights get 7
    /// bits, as ORT's `reduce_range` (see [`RuntimeProfile::default_weight_bits`]).
    pub fn for_runtime(model: &str, runtime: RuntimeProfile) -> Self {
        let mut r = Self::new(model);
        r.runtime = runtime;
        r.defaults.weight.bits = runtime.default_weight_bits();
        r
    }

    /// A recipe for `model` on this machine's ONNX Runtime (the CPU is detected).
    pub fn for_local_runtime(model: &str) -> Self {
        Self::for_runtime(model, RuntimeProfile::detect())
    }

    /// Whether node `name` of type `op_type` is excluded from quantization (`float_ops`,
    /// `float_nodes`).
    pub fn excludes(&self, name: &str, op_type: &str) -> bool {
        self.float_nodes.contains(name) || self.float_ops.contains(op_type)
    }

    /// The configuration of `layer`: its override, else the defaults.
    pub fn config_for(&self, layer: &str) -> LayerConfig {
        self.layers.get(layer).copied().unwrap_or(self.defaults)
    }

    /// Renames the layer overrides and the nodes kept float that this recipe keys by a model's
    /// previous node names ([`ModelSummary::renamed`], e.g. `Conv@0` before it became `conv1`)
    /// to the names in use; an override already under the new name wins. Returns how many
    /// entries were renamed.
    pub fn adopt_names(&mut self, summary: &ModelSummary) -> usize {
        let mut count = 0;
        for (old, new) in &summary.renamed {
            if let Some(cfg) = self.layers.remove(old) {
                self.layers.entry(new.clone()).or_insert(cfg);
                count += 1;
            }
            if self.float_nodes.remove(old) {
                self.float_nodes.insert(new.clone());
                count += 1;
            }
        }
        count
    }

    /// Checks the recipe against a model: every override names a quantizable layer and every
    /// scheme is valid.
    pub fn validate(&self, summary: &ModelSummary) -> Result<()> {
        self.defaults.validate()?;
        self.algorithm_settings.validate()?;
        let unknown: Vec<&str> =
            self.layers.keys().filter(|k| summary.layer(k).is_none()).map(String::as_str).collect();
        if !unknown.is_empty() {
            return Err(Error::Config(format!(
                "the recipe configures layers that are not quantizable layers of '{}': {}",
                summary.name,
                unknown.join(", ")
            )));
        }
        for (name, cfg) in &self.layers {
            cfg.validate().map_err(|e| Error::Config(format!("layer '{name}': {e}")))?;
        }
        Ok(())
    }

    /// The recipe as pretty JSON (deterministic: maps are sorted).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Config(format!("cannot serialize the recipe: {e}")))
    }

    /// Parses a recipe, refusing versions newer than this build reads (a `calibration` the file
    /// embeds is ignored: `calibrate::RecipeFile` reads it).
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        Self::from_value(Self::json_value(text, path)?, path)
    }

    /// `text` parsed as JSON, or the recipe error saying it is not.
    pub fn json_value(text: &str, path: &Path) -> Result<serde_json::Value> {
        serde_json::from_str(text).map_err(|e| Error::data(format!("not a valid recipe JSON ({e})"), path))
    }

    /// The text of the recipe file at `path`.
    pub fn read_text(path: &Path) -> Result<String> {
        std::fs::read_to_string(path).map_err(|e| Error::io("cannot read recipe", e, path))
    }

    /// [`Self::from_json`] for JSON already parsed.
    pub fn from_value(value: serde_json::Value, path: &Path) -> Result<Self> {
        let version = value.get("version").and_then(serde_json::Value::as_u64);
        match version {
            None => return Err(Error::data("not a recipe: no \"version\" field", path)),
            Some(v) if v > u64::from(RECIPE_VERSION) => {
                return Err(Error::data(
                    format!(
                        "recipe version {v} is newer than this QuantBench reads ({RECIPE_VERSION}); upgrade QuantBench"
                    ),
                    path,
                ));
            }
            Some(_) => {}
        }
        let recipe: Self =
            serde_json::from_value(value).map_err(|e| Error::data(format!("invalid recipe ({e})"), path))?;
        recipe.algorithm_settings.validate().map_err(|e| Error::data(format!("invalid recipe: {e}"), path))?;
        for (layer, cfg) in
            std::iter::once(("defaults", &recipe.defaults)).chain(recipe.layers.iter().map(|(k, v)| (k.as_str(), v)))
        {
            cfg.validate().map_err(|e| Error::data(format!("invalid recipe: {layer}: {e}"), path))?;
        }
        Ok(recipe)
    }

    /// Writes the recipe atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_json()?.as_bytes())
    }

    /// Reads a recipe file.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_json(&Self::read_text(path)?, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{Granularity, Observer};

    #[test]
    fn newer_versions_and_garbage_are_refused() {
        let p = Path::new("r.json");
        let err = Recipe::from_json(r#"{"version": 99, "model": "m"}"#, p).expect_err("newer");
        assert!(err.to_string().contains("recipe version 99 is newer"), "{err}");
        let err = Recipe::from_json("{]", p).expect_err("garbage");
        assert!(err.to_string().contains("not a valid recipe JSON"), "{err}");
        let err = Recipe::from_json("{}", p).expect_err("no version");
        assert!(err.to_string().contains("no \"version\""), "{err}");
    }

    #[test]
    fn algorithm_choices_round_trip_and_bad_settings_are_refused() {
        let p = Path::new("r.json");
        let mut r = Recipe::new("m");
        r.defaults.algorithms.ada_round = true;
        r.defaults.algorithms.smooth_quant = Some(0.75);
        let mut cfg = LayerConfig::default();
        cfg.algorithms.cross_layer_equalization = true;
        cfg.algorithms.bias_correction = true;
        r.layers.insert("conv1".into(), cfg);
        r.algorithm_settings.ada_round.iterations = 321;
        let back = Recipe::from_json(&r.to_json().expect("json"), p).expect("parse");
        assert_eq!(back, r);
        // Recipes written before the algorithms existed still load, with everything off.
        let old = Recipe::from_json(r#"{"version": 1, "model": "m", "defaults": {}}"#, p).expect("old");
        assert_eq!(old.defaults.algorithms, crate::quant::LayerAlgorithms::default());
        // ... and simulate the local CPU's arithmetic.
        assert_eq!(old.runtime, RuntimeProfile::detect());
        let mut bad = r.clone();
        bad.defaults.algorithms.smooth_quant = Some(1.5);
        let err = Recipe::from_json(&bad.to_json().expect("json"), p).expect_err("alpha");
        assert!(err.to_string().contains("SmoothQuant alpha must be in [0, 1]"), "{err}");
        let mut bad = r;
        bad.algorithm_settings.ada_round.learning_rate = -1.0;
        let err = Recipe::from_json(&bad.to_json().expect("json"), p).expect_err("lr");
        assert!(err.to_string().contains("learning rate"), "{err}");
    }

    #[test]
    fn runtime_profiles_round_trip_and_choose_the_default_weight_bits() {
        let p = Path::new("r.json");
        for runtime in crate::quant::RUNTIME_PROFILES {
            let r = Recipe::for_runtime("m", runtime);
            assert_eq!(r.defaults.weight.bits, if runtime == RuntimeProfile::OrtX86Avx2 { 7 } else { 8 });
            let json = r.to_json().expect("json");
            assert!(json.contains(&format!("\"runtime\": \"{runtime}\"")), "{json}");
            assert_eq!(Recipe::from_json(&json, p).expect("parse"), r);
        }
        let bad = Recipe::new("m").to_json().expect("json").replace("\"reference\"", "\"tpu\"");
        let err = Recipe::from_json(&bad, p).expect_err("unknown runtime");
        assert!(err.to_string().contains("invalid recipe"), "{err}");
    }

    #[test]
    fn overrides_round_trip() {
        let mut r = Recipe::new("m");
        let mut cfg = LayerConfig::default();
        cfg.weight.bits = 4;
        cfg.weight.granularity = Granularity::PerGroup { group_size: 32 };
        cfg.activation.observer = Observer::Percentile { percentile: 99.99 };
        r.layers.insert("conv1".into(), cfg);
        r.layers.insert("fc".into(), LayerConfig { keep_float: true, ..LayerConfig::default() });
        let back = Recipe::from_json(&r.to_json().expect("json"), Path::new("r.json")).expect("parse");
        assert_eq!(back, r);
        assert_eq!(back.config_for("conv1").weight.bits, 4);
        assert_eq!(back.config_for("other"), r.defaults);
    }

    #[test]
    fn manual_range_round_trips_and_is_validated() {
        let p = Path::new("r.json");
        let mut r = Recipe::new("m");
        let mut cfg = LayerConfig::default();
        cfg.activation.observer = Observer::Manual { min: -0.75, max: 3.5 };
        r.layers.insert("conv1".into(), cfg);
        let json = r.to_json().expect("json");
        assert!(json.contains(r#""kind": "manual""#), "{json}");
        let back = Recipe::from_json(&json, p).expect("parse");
        assert_eq!(back.config_for("conv1").activation.observer, Observer::Manual { min: -0.75, max: 3.5 });
        let bad = json.replace("3.5", "-1.0");
        let err = Recipe::from_json(&bad, p).expect_err("min > max");
        assert!(err.to_string().contains("manual range needs finite min < max"), "{err}");
    }
}
