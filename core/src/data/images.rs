//! Image folders: listing (flat, or one sub-folder per class), and preprocessing of PNG/JPEG files
//! into model input tensors (resize, centre crop, scale, mean/std, channel order, layout).

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Dim, TensorInfo, shape_to_string};

/// Order of colour channels in the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ChannelOrder {
    /// Red, green, blue.
    #[default]
    Rgb,
    /// Blue, green, red (Caffe/OpenCV models).
    Bgr,
}

/// Memory layout of the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// `[N, C, H, W]`.
    Nchw,
    /// `[N, H, W, C]`.
    Nhwc,
}

/// How an image becomes a tensor: resize the shorter side to `resize_shorter` (or straight to the
/// crop size when `None`), centre-crop to the model's height and width, scale pixel values by
/// `scale` (e.g. 1/255), then subtract `mean` and divide by `std` per channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preprocess {
    /// Target of the shorter side before the centre crop; `None` resizes to the crop directly.
    pub resize_shorter: Option<u32>,
    /// Factor applied to 0–255 pixel values.
    pub scale: f32,
    /// Per-channel mean subtracted after scaling (one value is broadcast).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after the mean (one value is broadcast).
    pub std: Vec<f32>,
    /// Channel order.
    pub channel_order: ChannelOrder,
    /// Layout; `None` infers it from the model input (channels of 1 or 3 at axis 1 → NCHW).
    pub layout: Option<Layout>,
}

impl Default for Preprocess {
    fn default() -> Self {
        Self {
            resize_shorter: None,
            scale: 1.0 / 255.0,
            mean: vec![0.0],
            std: vec![1.0],
            channel_order: ChannelOrder::Rgb,
            layout: None,
        }
    }
}

/// Resolved geometry of one sample.
struct Geometry {
    layout: Layout,
    channels: usize,
    height: usize,
    width: usize,
}

impl Preprocess {
    fn geometry(&self, input: &TensorInfo, dir: &Path) -> Result<Geometry> {
        let fixed: Vec<Option<usize>> = input
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => usize::try_from(*n).ok(),
                Dim::Symbolic(_) => None,
            })
            .collect();
        if fixed.len() != 4 {
            return Err(Error::data(
                format!("image folders need a 4-D model input, '{}' is {}", input.name, shape_to_string(&input.shape)),
                dir,
            ));
        }
        let layout = self.layout.unwrap_or(if matches!(fixed[1], Some(1 | 3)) { Layout::Nchw } else { Layout::Nhwc });
        let (c, h, w) = match layout {
            Layout::Nchw => (fixed[1], fixed[2], fixed[3]),
            Layout::Nhwc => (fixed[3], fixed[1], fixed[2]),
        };
        let (Some(channels), Some(height), Some(width)) = (c, h, w) else {
            return Err(Error::data(
                format!(
                    "model input '{}' {} has dynamic channels, height or width; fix them with --input-shape",
                    input.name,
                    shape_to_string(&input.shape)
                ),
                dir,
            ));
        };
        if !matches!(channels, 1 | 3) {
            return Err(Error::data(format!("images give 1 or 3 channels, the model wants {channels}"), dir));
        }
        for (what, v) in [("mean", &self.mean), ("std", &self.std)] {
            if v.len() != 1 && v.len() != channels {
                return Err(Error::data(format!("{what} has {} values for {channels} channels", v.len()), dir));
            }
        }
        if self.std.iter().any(|s| *s == 0.0 || !s.is_finite()) || !self.scale.is_finite() {
            return Err(Error::data("std values must be finite and non-zero", dir));
        }
        Ok(Geometry { layout, channels, height, width })
    }

    /// The shape of one sample (without the batch axis) for model input `input`.
    pub(crate) fn sample_shape(&self, input: &TensorInfo, dir: &Path) -> Result<Vec<usize>> {
        let g = self.geometry(input, dir)?;
        let mut s = vec![g.channels, g.height, g.width];
        if g.layout == Layout::Nhwc {
            s.rotate_left(1);
        }
        Ok(s)
    }
}

/// The images of a folder, sorted, and their labels when the folder has class sub-folders.
pub(crate) struct Listing {
    /// The image files.
    pub paths: Vec<PathBuf>,
    /// Each image's class (its sub-folder's index), when the folder has class sub-folders.
    pub labels: Option<Vec<i64>>,
}

fn is_image(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list image folder", e, dir))?;
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

/// Lists a folder: images directly inside it (unlabelled), or images in its sub-folders, each
/// sub-folder a class numbered in sorted order (as torchvision's `ImageFolder`).
pub(crate) fn list(dir: &Path) -> Result<Listing> {
    let entries = sorted_entries(dir)?;
    let classes: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
    let flat: Vec<PathBuf> = entries.iter().filter(|p| is_image(p)).cloned().collect();
    if !flat.is_empty() || classes.is_empty() {
        return Ok(Listing { paths: flat, labels: None });
    }
    let mut paths = Vec::new();
    let mut labels = Vec::new();
    for (class, sub) in (0i64..).zip(classes) {
        for p in sorted_entries(sub)?.into_iter().filter(|p| is_image(p)) {
            paths.push(p);
            labels.push(class);
        }
    }
    Ok(Listing { paths, labels: Some(labels) })
}

/// Loads and preprocesses `paths` into one `[n, sample_shape...]` array.
pub(crate) fn load_batch(paths: &[PathBuf], pre: &Preprocess, sample_shape: &[usize]) -> Result<ArrayD<f32>> {
    let [a, b, c] = sample_shape else {
        return Err(Error::Config(format!("bad image sample shape {sample_shape:?}")));
    };
    let nchw = matches!(*a, 1 | 3) && pre.layout != Some(Layout::Nhwc);
    let (channels, height, width) = if nchw { (*a, *b, *c) } else { (*c, *a, *b) };
    let mut out = ArrayD::<f32>::zeros(IxDyn(&[paths.len(), *a, *b, *c]));
    for (i, path) in paths.iter().enumerate() {
        let img = image::open(path).map_err(|e| Error::data(format!("cannot decode image ({e})"), path))?;
        let img = resize_and_crop(&img, pre.resize_shorter, width, height);
        let rgb = img.to_rgb8();
        for y in 0..height {
            for x in 0..width {
                let px = rgb.get_pixel(u32::try_from(x).unwrap_or(0), u32::try_from(y).unwrap_or(0)).0;
                for ch in 0..channels {
                    let raw = if channels == 1 {
                        0.299 * f32::from(px[0]) + 0.587 * f32::from(px[1]) + 0.114 * f32::from(px[2])
                    } else {
                        let src = if pre.channel_order == ChannelOrder::Bgr { 2 - ch } else { ch };
                        f32::from(px[src])
                    };
                    let mean = pre.mean.get(ch).or(pre.mean.first()).copied().unwrap_or(0.0);
                    let std = pre.std.get(ch).or(pre.std.first()).copied().unwrap_or(1.0);
                    let v = (raw * pre.scale - mean) / std;
                    let idx = if nchw { [i, ch, y, x] } else { [i, y, x, ch] };
                    out[IxDyn(&idx)] = v;
                }
            }
        }
    }
    Ok(out)
}

fn resize_and_crop(
    img: &image::DynamicImage,
    shorter: Option<u32>,
    width: usize,
    height: usize,
) -> image::DynamicImage {
    use image::imageops::FilterType;
    let (w, h) = (u32::try_from(width).unwrap_or(1), u32::try_from(height).unwrap_or(1));
    let Some(shorter) = shorter else {
        return img.resize_exact(w, h, FilterType::Triangle);
    };
    let (iw, ih) = (img.width().max(1), img.height().max(1));
    let ratio = f64::from(shorter.max(w.max(h))) / f64::from(iw.min(ih));
    let nw = ((f64::from(iw) * ratio).round() as u32).max(w);
    let nh = ((f64::from(ih) * ratio).round() as u32).max(h);
    let resized = img.resize_exact(nw, nh, FilterType::Triangle);
    resized.crop_imm((nw - w) / 2, (nh - h) / 2, w, h)
}
