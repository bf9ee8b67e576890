//! The command line (clap): the subcommands and their flags, as docs/CLI.md documents them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// QuantBench: post-training quantization workbench for ONNX models.
#[derive(Debug, Parser)]
#[command(name = "quantbench", version, about)]
pub struct Cli {
    /// Subcommand; without one the GUI opens.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Model to open in the GUI (a bundled sample model when omitted).
    pub model: Option<PathBuf>,
    /// GUI: calibration data to load with the model (instead of a calib.npz beside it).
    #[arg(long, value_name = "DATA")]
    pub calib: Option<PathBuf>,
    /// GUI: evaluation data to load with the model (instead of an eval.npz beside it).
    #[arg(long, value_name = "DATA")]
    pub eval: Option<PathBuf>,
    /// GUI: a recipe to open once the model has loaded.
    #[arg(long, value_name = "R.json")]
    pub recipe: Option<PathBuf>,
}

/// The headless subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a model's inputs, outputs, nodes and quantizable layers (needs no data).
    Inspect {
        /// The ONNX model.
        model: PathBuf,
        /// Print the summary as JSON (stable field names, deterministic order).
        #[arg(long)]
        json: bool,
    },
    /// Stream calibration data through the model once and print every tensor's range and the
    /// clip range each observer picks.
    Calibrate {
        /// The ONNX model.
        model: PathBuf,
        /// Calibration data: .npz, .npy, or a folder of images.
        #[arg(long)]
        calib: PathBuf,
        /// Fix dynamic input dims the data cannot: name=1x3x48x192 (repeatable).
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shapes: Vec<String>,
        /// The runtime whose arithmetic the simulation reproduces and the defaults avoid
        /// saturating: auto (this CPU), reference, ort-x86-avx2, ort-x86-vnni, ort-arm.
        #[arg(long, value_name = "PROFILE")]
        runtime: Option<String>,
        /// Write a recipe (default configuration + the calibration statistics).
        #[arg(long, value_name = "RECIPE.json")]
        save_recipe: Option<PathBuf>,
    },
    /// Calibrate, simulate the quantized model on an evaluation set and write a report with
    /// model-level metrics, per-layer local and accumulated errors, and predictions.
    Analyze {
        /// The ONNX model.
        model: PathBuf,
        #[command(flatten)]
        quant: QuantOptions,
        /// Evaluation data (labels give accuracies).
        #[arg(long)]
        eval: PathBuf,
        /// Where to write the report JSON.
        #[arg(long, value_name = "REPORT.json")]
        report: PathBuf,
        /// Skip per-layer local errors (faster).
        #[arg(long)]
        no_local: bool,
        /// Add per-layer sensitivity (enable-one, disable-one, weights/activations only, sweep).
        #[arg(long)]
        sensitivity: bool,
        /// Add a bit-width sweep to the sensitivity at these widths (e.g. 2,4,8).
        #[arg(long, value_delimiter = ',')]
        bits: Vec<u8>,
        /// Sensitivity: evaluation samples every layer is first measured on (the leaders of the
        /// rankings are then measured on the whole set); at least the set's size measures
        /// everything on the whole set.
        #[arg(long, value_name = "N", default_value_t = quantbench_core::analysis::SENSITIVITY_SUBSET)]
        sensitivity_samples: usize,
        /// Sensitivity metric: accuracy (default with labels), agreement, sqnr.
        #[arg(long)]
        metric: Option<String>,
    },
    /// Calibrate, quantize and export a QDQ ONNX model (plus optional report and encodings).
    Quantize {
        /// The ONNX model.
        model: PathBuf,
        #[command(flatten)]
        quant: QuantOptions,
        /// Evaluation data: simulate the quantized model on it and fill the report.
        #[arg(long)]
        eval: Option<PathBuf>,
        /// Where to write the QDQ model.
        #[arg(long, value_name = "OUT.onnx")]
        out: PathBuf,
        /// Where to write the report JSON (needs --eval).
        #[arg(long, value_name = "REPORT.json")]
        report: Option<PathBuf>,
        /// Where to write encodings JSON (AIMET and ONNX Runtime overrides).
        #[arg(long, value_name = "ENC.json")]
        encodings: Option<PathBuf>,
        /// Mixed precision: choose per-layer weight bits so that accuracy (top-1 agreement
        /// without labels) drops at most this many points (needs --eval).
        #[arg(long, value_name = "POINTS", conflicts_with = "target_size")]
        target_accuracy_drop: Option<f64>,
        /// Mixed precision: choose per-layer weight bits for the best accuracy within this
        /// quantized size in bytes (needs --eval).
        #[arg(long, value_name = "BYTES")]
        target_size: Option<u64>,
    },
}

/// Quantization options shared by `analyze` and `quantize`. Flags change the recipe's defaults;
/// per-layer overrides in a recipe take precedence.
#[derive(Debug, clap::Args)]
pub struct QuantOptions {
    /// Calibration data: .npz, .npy, or a folder of images (optional with --weights-only, unless
    /// a weight algorithm learns from data).
    #[arg(long)]
    pub calib: Option<PathBuf>,
    /// Start from this recipe (defaults, per-layer overrides).
    #[arg(long, value_name = "R.json")]
    pub recipe: Option<PathBuf>,
    /// Activation observer: minmax, ema[:C], percentile[:P], entropy, mse, manual:MIN,MAX.
    #[arg(long)]
    pub observer: Option<String>,
    /// Weight bits (2–16).
    #[arg(long = "w-bits")]
    pub w_bits: Option<u8>,
    /// Activation bits (2–16).
    #[arg(long = "a-bits")]
    pub a_bits: Option<u8>,
    /// Per-tensor weights instead of per-channel.
    #[arg(long = "per-tensor", conflicts_with = "block_size")]
    pub per_tensor: bool,
    /// Weight-only quantization: activations stay float, no calibration data needed. Without a
    /// recipe, weights get ONNX Runtime's weight-only default grid (unsigned, asymmetric) unless
    /// --w-symmetric.
    #[arg(long = "weights-only")]
    pub weights_only: bool,
    /// Symmetric signed weights (with --weights-only).
    #[arg(long = "w-symmetric")]
    pub w_symmetric: bool,
    /// Block-wise weights for MatMul, Gemm and embedding Gather layers: one scale (and zero point)
    /// per block of this many weights along the input dimension (an embedding's rows) (16–256 typical; MatMulNBits needs a power of
    /// two ≥ 16). Other layers stay per channel.
    #[arg(long = "block-size", value_name = "N")]
    pub block_size: Option<usize>,
    /// How weights are rounded: rtn (nearest, the default), hqq (optimised zero points,
    /// data-free; exported as matmulnbits), gptq or awq (learned from the layer's calibration
    /// inputs: need --calib).
    #[arg(long = "weight-algorithm", value_name = "ALGORITHM")]
    pub weight_algorithm: Option<String>,
    /// How block-wise weights are exported: qdq (ONNX DequantizeLinear with block_size, INT4
    /// initializers, opset 21; the default) or matmulnbits (ONNX Runtime's MatMulNBits).
    #[arg(long = "weight-format", value_name = "FORMAT")]
    pub weight_format: Option<String>,
    /// The runtime whose arithmetic the simulation reproduces and the defaults avoid saturating:
    /// auto (this CPU, the default for a new recipe), reference, ort-x86-avx2, ort-x86-vnni,
    /// ort-arm. Without a recipe, ort-x86-avx2 gets 7-bit weights unless --w-bits says otherwise.
    #[arg(long, value_name = "PROFILE")]
    pub runtime: Option<String>,
    /// Where the export places Q/DQ: ort (ONNX Runtime's placement, the default: layer inputs
    /// and outputs and the ops its QDQ fusions run in integers), tensorrt (the activation
    /// inputs of Conv, ConvTranspose, Gemm and MatMul, and residual Adds' residual inputs) or npu
    /// (every float activation).
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Power-of-two scales for weights and activations (integer accelerators that rescale by
    /// shifts; usually with --target npu).
    #[arg(long = "pow2-scales")]
    pub pow2_scales: bool,
    /// Keep every node of this op type float (repeatable; e.g. Softmax), as ONNX Runtime's
    /// op_types_to_quantize leaves out.
    #[arg(long = "float-op", value_name = "OP")]
    pub float_ops: Vec<String>,
    /// Keep this node float (repeatable; a layer or any other node), as ONNX Runtime's
    /// nodes_to_exclude.
    #[arg(long = "float-node", value_name = "NODE")]
    pub float_nodes: Vec<String>,
    /// Dynamic activation quantization: ranges computed per batch at run time (exported as
    /// DynamicQuantizeLinear, as ONNX Runtime's quantize_dynamic does).
    #[arg(long)]
    pub dynamic: bool,
    /// Fix dynamic input dims the data cannot: name=1x3x48x192 (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shapes: Vec<String>,
    /// Cross-layer equalization of Conv→ReLU/ReLU6→Conv pairs (BatchNormalization folded first).
    #[arg(long)]
    pub cle: bool,
    /// SmoothQuant on MatMul/Gemm layers with migration strength ALPHA (default 0.5).
    #[arg(long, value_name = "ALPHA", num_args = 0..=1, default_missing_value = "0.5")]
    pub smoothquant: Option<f32>,
    /// Empirical bias correction.
    #[arg(long = "bias-correction")]
    pub bias_correction: bool,
    /// AdaRound: learned weight rounding.
    #[arg(long)]
    pub adaround: bool,
    /// AdaRound optimisation steps per layer.
    #[arg(long = "adaround-iterations", value_name = "N")]
    pub adaround_iterations: Option<usize>,
    /// EasyQuant: weight and activation scale search maximising output cosine similarity.
    #[arg(long)]
    pub easyquant: bool,
    /// Save the recipe used (with its calibration).
    #[arg(long, value_name = "R.json")]
    pub save_recipe: Option<PathBuf>,
    /// Memory the simulation's caches may use, in MiB (the float reference's kept values and the
    /// incremental cache, half each; what does not fit is recomputed): with --eval.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub memory_budget: usize,
}
