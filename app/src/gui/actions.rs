//! What the UI asks for: views return actions, the controller applies them after the frame. The
//! vocabulary views and the controller share (file purposes, saved views) lives here too.

use std::path::PathBuf;

use quantbench_core::analysis::{SensitivityMetric, Target};
use quantbench_core::data::Preprocess;
use quantbench_core::quant::LayerConfig;
use quantbench_core::worker::{DataRole, ExportKind, JobId};

/// A view that can be saved as CSV or PNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SavedView {
    /// The sensitivity bar chart (every measure of every layer).
    SensitivityBars,
    /// The bit-sweep heat map.
    SweepHeatmap,
    /// The mixed-precision search path and Pareto front.
    ParetoFront,
}

impl SavedView {
    /// Default file stem.
    pub fn stem(self) -> &'static str {
        match self {
            Self::SensitivityBars => "sensitivity",
            Self::SweepHeatmap => "bit_sweep",
            Self::ParetoFront => "pareto_front",
        }
    }
}

/// File format of a saved view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewFormat {
    /// The data, one row per layer (or path point).
    Csv,
    /// The view's pixels.
    Png,
}

impl ViewFormat {
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Png => "png",
        }
    }
}

/// Which file a background file dialog is choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilePurpose {
    /// An ONNX model to open.
    Model,
    /// A data set for a role.
    Data(DataRole),
    /// An image folder for a role.
    ImageFolder(DataRole),
    /// A recipe to open.
    Recipe,
    /// Where to write an export.
    Export(ExportKind),
    /// Where to save a view as CSV or PNG.
    SaveView(SavedView, ViewFormat),
}

/// How a click on a layer changes the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectMode {
    /// Select only this layer.
    Replace,
    /// Toggle this layer (Ctrl-click).
    Toggle,
    /// Select the range from the anchor to this layer (Shift-click).
    Range,
}

impl SelectMode {
    /// The mode a click with `modifiers` asks for: Shift a range, Ctrl (Cmd) a toggle.
    pub fn from_modifiers(modifiers: egui::Modifiers) -> Self {
        if modifiers.shift {
            Self::Range
        } else if modifiers.command {
            Self::Toggle
        } else {
            Self::Replace
        }
    }
}

/// A user request, applied by the controller after the frame that produced it.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Action {
    /// Choose a file: the path prompt for files to open (typed, recent or browsed), the system
    /// dialog for paths to save (their windows have a typed field already).
    PickFile(FilePurpose),
    /// Show the system file dialog (on a background thread: rfd blocks).
    BrowseFile(FilePurpose),
    /// Set the memory budget of the evaluations' caches, MiB.
    SetMemoryBudget(usize),
    /// Open the synthetic-inputs form for a role.
    ShowSynthetic(DataRole),
    /// Load a synthetic set for a role: per input the shape of one sample, and the sample count.
    LoadSynthetic(DataRole, Vec<Vec<usize>>, usize),
    /// Open a model, with a `calib.npz`/`eval.npz` beside it when present.
    OpenModel(PathBuf),
    /// Open a model with these data sets (a role not given takes the file beside the model), then
    /// this recipe.
    OpenModelWith(PathBuf, Vec<(DataRole, PathBuf)>, Option<PathBuf>),
    /// Open a data set for a role.
    LoadData(DataRole, PathBuf),
    /// Store image preprocessing settings and re-load the image-folder sets with them.
    ApplyPreprocess(Preprocess),
    /// Open a recipe and make it the session's.
    OpenRecipe(PathBuf),
    /// A dropped file: model, data set or recipe, by extension.
    Dropped(PathBuf),
    /// Set (`Some`) or clear (`None`) the overrides of layers.
    UpdateLayers(Vec<(String, Option<LayerConfig>)>),
    /// Replace the defaults.
    SetDefaults(LayerConfig),
    /// Choose the runtime profile the simulation reproduces.
    SetRuntime(quantbench_core::quant::RuntimeProfile),
    /// Choose where the export places Q/DQ (and the simulation with it).
    SetTarget(quantbench_core::quant::Target),
    /// Quantize weights only (activations float, nothing to calibrate) or weights and activations.
    SetWeightsOnly(bool),
    /// Choose how block-wise weights are exported.
    SetWeightFormat(quantbench_core::quant::WeightFormat),
    /// Keep every node of these op types float.
    SetFloatOps(std::collections::BTreeSet<String>),
    /// Keep these nodes float (any node, layer or not).
    SetFloatNodes(std::collections::BTreeSet<String>),
    /// Run calibration.
    Calibrate,
    /// Run an evaluation.
    Evaluate,
    /// Cancel a job.
    Cancel(JobId),
    /// Export to a path.
    Export(ExportKind, PathBuf),
    /// Show the export dialog.
    ShowExport,
    /// Change the selection / focused layer (index in network order).
    Select(usize, SelectMode),
    /// Dismiss an error message.
    DismissError(usize),
    /// Switch between light and dark.
    ToggleTheme,
    /// Draw the activation histogram on a log scale (a persisted setting).
    SetLogHistogram(bool),
    /// Run a sensitivity analysis of the current recipe.
    RunSensitivity {
        /// The metric measured.
        metric: SensitivityMetric,
        /// Sweep bit widths.
        bits: Vec<u8>,
    },
    /// Run a mixed-precision search from the current recipe.
    RunMixedPrecision(Target),
    /// Apply point `i` of the last mixed-precision search to the recipe.
    ApplyPathPoint(usize),
    /// Save a view to a path (`None`: open the save window to choose one).
    SaveView(SavedView, ViewFormat, Option<PathBuf>),
    /// Choose the save window's path with a file dialog.
    BrowseSavePath(SavedView, ViewFormat),
}
