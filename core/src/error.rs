//! The error type of the core library: one enum, each variant a precise, user-facing message.

use std::path::PathBuf;

/// Everything that can go wrong in the core. Messages are complete sentences without a trailing
/// period, with paths last, so the CLI can print them as one line and the GUI can show them as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{action}: {cause}: {path}")]
    Io {
        /// What was being done, e.g. "cannot read model".
        action: &'static str,
        /// The underlying I/O error (in the message, deliberately not a `source`, so that error
        /// chains print it once).
        cause: std::io::Error,
        /// The file concerned.
        path: PathBuf,
    },
    /// The bytes are not an ONNX model (empty, not protobuf, truncated, or no graph).
    #[error("not a valid ONNX model ({reason}): {path}")]
    NotOnnx {
        /// Why the bytes were rejected.
        reason: String,
        /// The file, or a descriptive name for in-memory bytes.
        path: PathBuf,
    },
    /// The model uses operators QuantBench (tract) cannot execute.
    #[error("unsupported operators: {0}")]
    UnsupportedOps(String),
    /// The model uses control flow (If, Loop, Scan), which QuantBench does not quantize.
    #[error("control flow is not supported: {0}")]
    ControlFlow(String),
    /// The model is structurally invalid (dangling tensor names, bad attributes, ...).
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// Input shapes could not be resolved to concrete values.
    #[error("cannot resolve input shape: {0}")]
    Shape(String),
    /// A data set does not fit the model or is malformed.
    #[error("{message}: {path}")]
    Data {
        /// What is wrong, naming the key, sample or value concerned.
        message: String,
        /// The data file or folder.
        path: PathBuf,
    },
    /// The inference engine failed while typing, optimising or running the model.
    #[error("inference failed: {0}")]
    Runtime(String),
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The job was cancelled by the user.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// Builds an [`Error::Data`] for `path`.
    pub fn data(message: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self::Data { message: message.into(), path: path.into() }
    }

    /// Builds an [`Error::Io`].
    pub fn io(action: &'static str, cause: std::io::Error, path: impl Into<PathBuf>) -> Self {
        Self::Io { action, cause, path: path.into() }
    }

    /// Wraps a tract error, keeping its whole cause chain on one line.
    pub fn runtime(err: &impl std::fmt::Display) -> Self {
        Self::Runtime(one_line(&format!("{err:#}")))
    }
}

/// Collapses a multi-line message into one line.
pub(crate) fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// Result alias of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
