//! Structural mutations of `.npy` files, header field by header field.

use super::{Rng, mutate_bytes};

/// A `.npy` file split into its parts.
#[derive(Debug, Clone)]
pub struct Npy {
    /// Format version byte.
    pub version: u8,
    /// The header dictionary text.
    pub header: String,
    /// The data after the header.
    pub data: Vec<u8>,
}

impl Npy {
    /// Splits a well-formed `.npy` file.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
            return None;
        }
        let (len, start) = match b[6] {
            1 => (usize::from(u16::from_le_bytes([b[8], b[9]])), 10),
            2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
            _ => return None,
        };
        let header = b.get(start..start + len)?;
        Some(Self {
            version: b[6],
            header: String::from_utf8_lossy(header).into_owned(),
            data: b[start + len..].to_vec(),
        })
    }

    /// Encodes the file; `len_override` writes a wrong header length.
    pub fn build(&self, len_override: Option<u32>) -> Vec<u8> {
        let mut out = b"\x93NUMPY".to_vec();
        out.push(self.version);
        out.push(0);
        let len = len_override.unwrap_or(self.header.len() as u32);
        if self.version == 1 {
            out.extend_from_slice(&(len as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(self.header.as_bytes());
        out.extend_from_slice(&self.data);
        out
    }
}

const DESCRS: &[&str] = &["<f4", "<f8", "<i8", "<i4", "|u1", "<u1", ">f4", "|b1", "<f2", "O", "<U10", "", "<c8", "|i1"];

fn random_dim(rng: &mut Rng) -> String {
    let small = ["0", "1", "2", "3", "5", "7", "8", "64", "255", "256", "65536"];
    let big = [
        "2147483648",
        "4294967296",
        "1099511627776",
        "4611686018427387904",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "1L",
        "",
        "x",
    ];
    if rng.chance(2, 3) { (*rng.pick(&small)).into() } else { (*rng.pick(&big)).into() }
}

fn shape_span(header: &str) -> Option<std::ops::Range<usize>> {
    let key = header.find("'shape':")?;
    let open = key + header[key..].find('(')?;
    let close = open + header[open..].find(')')?;
    Some(open + 1..close)
}

/// Parses the shape of a header, when it is a tuple of plain numbers.
fn header_shape(header: &str) -> Option<Vec<usize>> {
    let span = shape_span(header)?;
    header[span].split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().ok()).collect()
}

pub(super) fn descr_size(header: &str) -> usize {
    if ["<f8", "<i8"].iter().any(|d| header.contains(d)) {
        8
    } else if ["|u1", "<u1", "|b1", "|i1"].iter().any(|d| header.contains(d)) {
        1
    } else {
        4
    }
}

/// Resizes the data to exactly what the header's shape needs (when that is small), filled with
/// values that include NaN and infinities now and then.
fn fit_data(rng: &mut Rng, n: &mut Npy) {
    let Some(shape) = header_shape(&n.header) else { return };
    let Some(bytes) = shape.iter().try_fold(descr_size(&n.header), |a, &d| a.checked_mul(d)) else { return };
    if bytes > 1 << 16 {
        return;
    }
    n.data.resize(bytes, 0);
    if rng.chance(1, 4) && bytes >= 4 {
        let at = rng.below(bytes / 4) * 4;
        let v = *rng.pick(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX]);
        n.data[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
}

/// One structural mutation of a `.npy` file.
pub fn mutate_npy(rng: &mut Rng, n: &mut Npy) -> Option<u32> {
    match rng.below(10) {
        0 => {
            let start = n.header.find("'descr':").map(|k| k + 8);
            if let Some(s) = start
                && let Some(q1) = n.header[s..].find('\'').map(|q| s + q + 1)
                && let Some(q2) = n.header[q1..].find('\'').map(|q| q1 + q)
            {
                let descr: &&str = rng.pick(DESCRS);
                n.header.replace_range(q1..q2, descr);
            }
        }
        1 => {
            n.header = if n.header.contains("True") {
                n.header.replace("True", "False")
            } else {
                n.header.replace("False", "True")
            };
        }
        2 | 3 => {
            if let Some(span) = shape_span(&n.header) {
                let rank = if rng.chance(1, 3) { rng.below(5) } else { header_shape(&n.header).map_or(2, |s| s.len()) };
                let mut dims: Vec<String> = header_shape(&n.header)
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .chain(std::iter::repeat_with(|| "1".to_string()))
                    .take(rank)
                    .collect();
                if !dims.is_empty() {
                    let k = rng.below(dims.len());
                    dims[k] = random_dim(rng);
                }
                let text = if dims.len() == 1 { format!("{},", dims[0]) } else { dims.join(", ") };
                n.header.replace_range(span, &text);
            }
            if rng.chance(1, 2) {
                fit_data(rng, n);
            }
        }
        4 => n.version = *rng.pick(&[1, 2, 3, 0, 4, 255]),
        5 => {
            let cut = rng.below(n.data.len() + 1);
            n.data.truncate(cut);
        }
        6 => {
            let mut h = n.header.clone().into_bytes();
            let donor = h.clone();
            mutate_bytes(rng, &mut h, &donor);
            n.header = String::from_utf8_lossy(&h).into_owned();
        }
        7 => {
            // A second value for a key: the reader takes the first occurrence.
            let extra = *rng.pick(&["'shape': (1,), ", "'descr': '<f8', ", "'fortran_order': True, ", "'shape': (), "]);
            let at = if rng.chance(1, 2) && n.header.is_char_boundary(1) { 1 } else { n.header.len() };
            n.header.insert_str(at, extra);
        }
        8 => return Some(*rng.pick(&[0, 1, u32::from(u16::MAX), 1 << 20, (1 << 20) + 1, u32::MAX])),
        _ => fit_data(rng, n),
    }
    None
}

/// Splits `base` as a `.npy` file and mutates it structurally; raw bytes otherwise.
pub fn mutate_npy_bytes(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let Some(mut n) = Npy::parse(base) else { return base.to_vec() };
    let mut len = None;
    for _ in 0..=rng.below(3) {
        len = mutate_npy(rng, &mut n).or(len);
    }
    n.build(len)
}
