//! Data sets: `.npz` (keys = model input names, optional integer `labels`), `.npy` (single-input
//! models) and image folders with a preprocessing spec. Each is checked against the model when
//! opened (headers only) and then streamed in batches, so memory stays bounded.

mod images;
mod npy;
mod shapes;
mod synthetic;

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

pub use images::{ChannelOrder, Layout, Preprocess};
use npy::NpyStream;
pub use shapes::{InputShape, fixed_batch, resolve_input_shapes};
pub use synthetic::{SYNTHETIC_NAME, SplitMix};

use crate::error::{Error, Result};
use crate::model::{Dim, TensorInfo, shape_to_string};

/// The key of the optional label array in `.npz` files.
pub const LABELS_KEY: &str = "labels";

/// Where a data set comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DataSource {
    /// A `.npz` archive whose keys are model input names (plus optional `labels`).
    Npz(PathBuf),
    /// A single `.npy` array, for single-input models.
    Npy(PathBuf),
    /// A folder of PNG/JPEG images (with one sub-folder per class when labelled).
    Images {
        /// The folder.
        dir: PathBuf,
        /// How images become tensors.
        preprocess: Preprocess,
    },
    /// Random inputs for a model without data (`synthetic.rs`): a choice the user makes and the
    /// workbench flags, never a fallback.
    Synthetic {
        /// Number of samples.
        samples: usize,
        /// Per model input (graph order): the shape of one sample, without the batch axis.
        shapes: Vec<Vec<usize>>,
        /// The same seed gives the same samples.
        seed: u64,
    },
}

impl DataSource {
    /// Chooses the kind from the path: a directory is an image folder (default preprocessing),
    /// `.npz` and `.npy` by extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Ok(Self::Images { dir: path.to_path_buf(), preprocess: Preprocess::default() });
        }
        if !path.exists() {
            return Err(Error::data("data file does not exist", path));
        }
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("npz") => Ok(Self::Npz(path.to_path_buf())),
            Some("npy") => Ok(Self::Npy(path.to_path_buf())),
            _ => Err(Error::data("unknown data format (expected .npz, .npy or a folder of images)", path)),
        }
    }

    /// The file or folder.
    pub fn path(&self) -> &Path {
        match self {
            Self::Npz(p) | Self::Npy(p) => p,
            Self::Images { dir, .. } => dir,
            Self::Synthetic { .. } => Path::new(SYNTHETIC_NAME),
        }
    }
}

/// A data set checked against a model's inputs, ready to stream.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// Where the samples come from.
    pub source: DataSource,
    /// Number of samples.
    pub num_samples: usize,
    /// Per model input (graph order): the shape of one sample, without the batch axis.
    pub sample_shapes: Vec<Vec<usize>>,
    /// Integer class labels, one per sample, when the set has them.
    pub labels: Option<Vec<i64>>,
    input_names: Vec<String>,
    /// Per input, whether the model reads integers (synthetic sets draw ids for them).
    integer_inputs: Vec<bool>,
    images: Vec<PathBuf>,
}

/// One batch: for each model input (graph order) an array `[n, sample_shape...]`.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Index of the first sample of the batch in the set.
    pub first_sample: usize,
    /// The input arrays.
    pub inputs: Vec<ArrayD<f32>>,
}

impl Batch {
    /// Number of samples in the batch.
    pub fn len(&self) -> usize {
        self.inputs.first().map_or(0, |a| a.shape().first().copied().unwrap_or(0))
    }

    /// Whether the batch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks that a sample shape fits a model input shape (whose first dim is the batch axis).
fn check_sample_shape(input: &TensorInfo, array_shape: &[usize], path: &Path, key: &str) -> Result<()> {
    let expected = &input.shape;
    let mismatch = || {
        Error::data(
            format!(
                "array '{key}' has shape {:?} but model input '{}' expects {} (first axis = samples)",
                array_shape,
                input.name,
                shape_to_string(expected)
            ),
            path,
        )
    };
    if array_shape.len() != expected.len() || expected.is_empty() {
        return Err(mismatch());
    }
    for (got, want) in array_shape.iter().zip(expected).skip(1) {
        if let Dim::Fixed(w) = want
            && u64::try_from(*got).ok() != Some(*w)
        {
            return Err(mismatch());
        }
    }
    Ok(())
}

/// Element types of model inputs whose data QuantBench takes: float32 (calibrated and
/// quantizable) and the integer and bool kinds (token ids, masks, byte values), which are passed
/// through to the model as they are and never quantized.
const INTEGER_INPUT_TYPES: [&str; 7] = ["int64", "int32", "int16", "int8", "uint16", "uint8", "bool"];

/// Whether a model input takes integer (or bool) data.
pub fn is_integer_input(input: &TensorInfo) -> bool {
    INTEGER_INPUT_TYPES.contains(&input.elem_type.as_str())
}

fn check_input_type(input: &TensorInfo, path: &Path) -> Result<()> {
    if input.elem_type == "float32" || is_integer_input(input) {
        Ok(())
    } else {
        Err(Error::data(
            format!(
                "model input '{}' has element type {}; QuantBench takes float32, integer and bool inputs",
                input.name, input.elem_type
            ),
            path,
        ))
    }
}

impl DataSet {
    /// Opens `source` and checks it against the model `inputs` (headers, shapes, dtypes, counts,
    /// labels). Values (NaN/Inf) are checked as batches are read.
    pub fn open(source: DataSource, inputs: &[TensorInfo]) -> Result<Self> {
        let path = source.path().to_path_buf();
        for input in inputs {
            check_input_type(input, &path)?;
        }
        let (num_samples, sample_shapes, labels, images) = match &source {
            DataSource::Npz(p) => {
                let (n, shapes, labels) = open_npz(p, inputs)?;
                (n, shapes, labels, Vec::new())
            }
            DataSource::Npy(p) => {
                let [input] = inputs else {
                    return Err(Error::data(
                        format!("a .npy file holds one array but the model has {} inputs: use .npz", inputs.len()),
                        p,
                    ));
                };
                let s = NpyStream::open_npy(p).map_err(|m| Error::data(m, p))?;
                check_array(&s, input, p, "array")?;
                (s.num_rows(), vec![s.header.shape[1..].to_vec()], None, Vec::new())
            }
            DataSource::Images { dir, preprocess } => {
                let [input] = inputs else {
                    return Err(Error::data(
                        format!("image folders feed single-input models; the model has {} inputs", inputs.len()),
                        dir,
                    ));
                };
                if is_integer_input(input) {
                    return Err(Error::data(
                        format!("image folders feed float inputs; model input '{}' is {}", input.name, input.elem_type),
                        dir,
                    ));
                }
                let listing = images::list(dir)?;
                let shape = preprocess.sample_shape(input, dir)?;
                (listing.paths.len(), vec![shape], listing.labels, listing.paths)
            }
            DataSource::Synthetic { samples, shapes, .. } => {
                if shapes.len() != inputs.len() {
                    return Err(Error::data(
                        format!("{} synthetic input shapes for a model with {} inputs", shapes.len(), inputs.len()),
                        &path,
                    ));
                }
                for (input, shape) in inputs.iter().zip(shapes) {
                    let mut full = vec![*samples];
                    full.extend_from_slice(shape);
                    if shape.contains(&0) {
                        return Err(Error::data(
                            format!("input '{}': a dimension of 0 in {full:?}", input.name),
                            &path,
                        ));
                    }
                    check_sample_shape(input, &full, &path, &input.name)?;
                }
                (*samples, shapes.clone(), None, Vec::new())
            }
        };
        if num_samples == 0 {
            return Err(Error::data("the data set is empty (0 samples)", &path));
        }
        Ok(Self {
            source,
            num_samples,
            sample_shapes,
            labels,
            input_names: inputs.iter().map(|i| i.name.clone()).collect(),
            integer_inputs: inputs.iter().map(is_integer_input).collect(),
            images,
        })
    }

    /// Streams the set in batches of `batch_size` samples (the last may be smaller).
    pub fn batches(&self, batch_size: usize) -> Result<Batches<'_>> {
        let streams = match &self.source {
            DataSource::Npz(p) => self
                .input_names
                .iter()
                .map(|k| NpyStream::open_npz_entry(p, k).map_err(|m| Error::data(m, p)))
                .collect::<Result<Vec<_>>>()?,
            DataSource::Npy(p) => vec![NpyStream::open_npy(p).map_err(|m| Error::data(m, p))?],
            DataSource::Images { .. } | DataSource::Synthetic { .. } => Vec::new(),
        };
        Ok(Batches { set: self, streams, next_sample: 0, batch_size: batch_size.max(1), buf: Vec::new() })
    }

    /// Reads the whole set as one batch per input (for small evaluation sets that are kept).
    pub fn read_all(&self) -> Result<Batch> {
        let mut it = self.batches(self.num_samples)?;
        it.next().unwrap_or_else(|| Err(Error::data("the data set is empty (0 samples)", self.source.path())))
    }
}

fn check_array(s: &NpyStream, input: &TensorInfo, path: &Path, key: &str) -> Result<()> {
    use npy::DType;
    let ok = if is_integer_input(input) {
        matches!(s.header.dtype, DType::I64 | DType::I32 | DType::U8 | DType::Bool)
    } else {
        s.header.dtype == DType::F32
    };
    if !ok {
        let want = if is_integer_input(input) { input.elem_type.as_str() } else { "float32" };
        return Err(Error::data(
            format!(
                "array '{key}' has dtype {} but model input '{}' is {} (convert with .astype(np.{want}))",
                s.header.dtype_name(),
                input.name,
                input.elem_type,
            ),
            path,
        ));
    }
    check_sample_shape(input, &s.header.shape, path, key)
}

type NpzContents = (usize, Vec<Vec<usize>>, Option<Vec<i64>>);

fn open_npz(p: &Path, inputs: &[TensorInfo]) -> Result<NpzContents> {
    let keys = npy::npz_keys(p).map_err(|m| Error::data(m, p))?;
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut shapes = Vec::new();
    for input in inputs {
        if !keys.contains(&input.name) {
            return Err(Error::data(
                format!("no array for model input '{}' (keys: {})", input.name, keys.join(", ")),
                p,
            ));
        }
        let s = NpyStream::open_npz_entry(p, &input.name).map_err(|m| Error::data(m, p))?;
        check_array(&s, input, p, &input.name)?;
        counts.push((input.name.clone(), s.num_rows()));
        shapes.push(s.header.shape[1..].to_vec());
    }
    let n = counts.first().map_or(0, |c| c.1);
    if let Some((k, m)) = counts.iter().find(|c| c.1 != n) {
        return Err(Error::data(format!("sample counts differ: '{}' has {n} samples, '{k}' has {m}", counts[0].0), p));
    }
    let labels = if keys.iter().any(|k| k == LABELS_KEY) {
        let mut s = NpyStream::open_npz_entry(p, LABELS_KEY).map_err(|m| Error::data(m, p))?;
        if s.header.shape.len() != 1 {
            return Err(Error::data(
                format!("'labels' must be a 1-D integer array, found shape {:?}", s.header.shape),
                p,
            ));
        }
        let labels = s.read_all_i64().map_err(|m| Error::data(format!("'labels' has {m}"), p))?;
        if labels.len() != n {
            return Err(Error::data(format!("'labels' has {} entries for {n} samples", labels.len()), p));
        }
        if let Some(i) = labels.iter().position(|&l| l < 0) {
            return Err(Error::data(format!("'labels' has a negative value {} at sample {i}", labels[i]), p));
        }
        Some(labels)
    } else {
        None
    };
    Ok((n, shapes, labels))
}

/// Iterator over the batches of a [`DataSet`].
#[derive(Debug)]
pub struct Batches<'a> {
    set: &'a DataSet,
    streams: Vec<NpyStream>,
    next_sample: usize,
    batch_size: usize,
    buf: Vec<f32>,
}

impl Batches<'_> {
    fn read_batch(&mut self, n: usize) -> Result<Batch> {
        let first = self.next_sample;
        let path = self.set.source.path();
        let mut inputs = Vec::with_capacity(self.set.sample_shapes.len());
        if let DataSource::Images { preprocess, .. } = &self.set.source {
            let shape = &self.set.sample_shapes[0];
            let arr = images::load_batch(&self.set.images[first..first + n], preprocess, shape)?;
            inputs.push(arr);
        } else if let DataSource::Synthetic { seed, .. } = &self.set.source {
            for (ix, shape) in self.set.sample_shapes.iter().enumerate() {
                let integer = self.set.integer_inputs.get(ix).copied().unwrap_or(false);
                inputs.push(synthetic::batch(*seed, ix, integer, shape, first, n)?);
            }
        } else {
            for (ix, stream) in self.streams.iter_mut().enumerate() {
                stream.read_f32_rows(n, &mut self.buf).map_err(|m| Error::data(m, path))?;
                let name = &self.set.input_names[ix];
                let row_len = stream.row_len().max(1);
                if let Some(pos) = self.buf.iter().position(|v| !v.is_finite()) {
                    return Err(Error::data(
                        format!("input '{name}' sample {} contains {}", first + pos / row_len, self.buf[pos]),
                        path,
                    ));
                }
                let mut shape = vec![n];
                shape.extend_from_slice(&self.set.sample_shapes[ix]);
                let arr = ArrayD::from_shape_vec(IxDyn(&shape), self.buf.clone())
                    .map_err(|e| Error::data(format!("input '{name}': {e}"), path))?;
                inputs.push(arr);
            }
        }
        Ok(Batch { first_sample: first, inputs })
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_sample >= self.set.num_samples {
            return None;
        }
        let n = self.batch_size.min(self.set.num_samples - self.next_sample);
        let batch = self.read_batch(n);
        self.next_sample += n;
        if batch.is_err() {
            // Stop after an error: the streams' positions are no longer trustworthy.
            self.next_sample = self.set.num_samples;
        }
        Some(batch)
    }
}
