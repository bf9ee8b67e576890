//! Streaming reader for NumPy `.npy` arrays, alone or inside (possibly compressed) `.npz`
//! archives. Arrays are read a few rows at a time so that a large set never sits in memory whole.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// The largest integer magnitude a float32 holds exactly.
const MAX_EXACT_INT: u64 = 1 << 24;

/// Element type of an array, as its NumPy `descr` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    F64,
    I64,
    I32,
    U8,
    Bool,
    Other,
}

/// The parsed header of one `.npy` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NpyHeader {
    /// Element type.
    pub dtype: DType,
    /// NumPy's `descr` string, for messages (`<f8`, `|b1`, ...).
    pub descr: String,
    /// Whether the data is stored column-major.
    pub fortran_order: bool,
    /// The array shape.
    pub shape: Vec<usize>,
}

impl NpyHeader {
    /// Human name of the dtype for messages (`float64`, ...).
    pub fn dtype_name(&self) -> String {
        match self.dtype {
            DType::F32 => "float32".into(),
            DType::F64 => "float64".into(),
            DType::I64 => "int64".into(),
            DType::I32 => "int32".into(),
            DType::U8 => "uint8".into(),
            DType::Bool => "bool".into(),
            DType::Other => format!("'{}'", self.descr),
        }
    }

    fn elem_size_bytes(&self) -> usize {
        match self.dtype {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::U8 | DType::Bool => 1,
            DType::Other => 0,
        }
    }
}

/// Parses the header at the start of `r`, leaving `r` at the first data byte.
pub(crate) fn read_header(r: &mut impl Read) -> Result<NpyHeader, String> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|_| "not a .npy array (too short)".to_string())?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("not a .npy array (bad magic bytes)".into());
    }
    let header_len = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|_| "truncated .npy header".to_string())?;
            usize::from(u16::from_le_bytes(b))
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|_| "truncated .npy header".to_string())?;
            usize::try_from(u32::from_le_bytes(b)).map_err(|_| "oversized .npy header".to_string())?
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    if header_len > 1 << 20 {
        return Err(format!("oversized .npy header ({header_len} bytes)"));
    }
    let mut text = vec![0u8; header_len];
    r.read_exact(&mut text).map_err(|_| "truncated .npy header".to_string())?;
    let text = String::from_utf8_lossy(&text);
    parse_header_dict(&text)
}

fn dict_value<'a>(text: &'a str, key: &str) -> Result<&'a str, String> {
    let pat = format!("'{key}':");
    let start = text.find(&pat).ok_or_else(|| format!("malformed .npy header: no '{key}'"))? + pat.len();
    Ok(text[start..].trim_start())
}

fn parse_header_dict(text: &str) -> Result<NpyHeader, String> {
    let descr_rest = dict_value(text, "descr")?;
    let descr = descr_rest
        .strip_prefix('\'')
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| "malformed .npy header: descr".to_string())?
        .to_string();
    let dtype = match descr.as_str() {
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        "<i8" => DType::I64,
        "<i4" => DType::I32,
        "|u1" | "<u1" => DType::U8,
        "|b1" => DType::Bool,
        _ => DType::Other,
    };
    let fortran_order = dict_value(text, "fortran_order")?.starts_with("True");
    let shape_rest = dict_value(text, "shape")?;
    let inner = shape_rest
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| "malformed .npy header: shape".to_string())?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>().map_err(|_| format!("malformed .npy shape '{inner}'")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NpyHeader { dtype, descr, fortran_order, shape })
}

/// An open array positioned at its data, read row by row (a row is one sample: all elements
/// after the first axis).
pub(crate) struct NpyStream {
    reader: Box<dyn Read + Send>,
    /// The array's header.
    pub header: NpyHeader,
    rows_read: usize,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NpyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpyStream")
            .field("header", &self.header)
            .field("rows_read", &self.rows_read)
            .finish_non_exhaustive()
    }
}

impl NpyStream {
    /// Opens a plain `.npy` file.
    pub fn open_npy(path: &Path) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
        let size = file.metadata().map_err(|e| format!("cannot open: {e}"))?.len();
        Self::from_reader(Box::new(BufReader::new(file)), size)
    }

    /// Opens the array `key` (without `.npy`) of a `.npz` archive.
    pub fn open_npz_entry(path: &Path, key: &str) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
        let mut archive =
            zip::ZipArchive::new(BufReader::new(file)).map_err(|e| format!("not a valid .npz archive ({e})"))?;
        let (data_start, compressed_size, size, method) = {
            let entry =
                archive.by_name(&format!("{key}.npy")).map_err(|e| format!("cannot read array '{key}' ({e})"))?;
            (entry.data_start(), entry.compressed_size(), entry.size(), entry.compression())
        };
        let mut file = archive.into_inner();
        file.seek(SeekFrom::Start(data_start)).map_err(|e| format!("cannot read array '{key}' ({e})"))?;
        let raw = file.take(compressed_size);
        let reader: Box<dyn Read + Send> = match method {
            zip::CompressionMethod::Stored => Box::new(raw),
            zip::CompressionMethod::Deflated => Box::new(flate2::read::DeflateDecoder::new(raw)),
            other => return Err(format!("array '{key}' uses unsupported compression {other:?}")),
        };
        Self::from_reader(reader, size)
    }

    /// Reads the header of an array whose stream holds `total_bytes` (header included) and checks
    /// that the data the header declares can be there.
    fn from_reader(mut reader: Box<dyn Read + Send>, total_bytes: u64) -> Result<Self, String> {
        let header = read_header(&mut reader)?;
        if header.shape.iter().skip(1).any(|&d| d == 0) {
            return Err(format!("the array has an empty dimension (shape {:?})", header.shape));
        }
        let declared = header
            .shape
            .iter()
            .try_fold(header.elem_size_bytes() as u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| format!("the array shape {:?} is too large", header.shape))?;
        if declared > total_bytes {
            return Err(format!(
                "truncated array data: the header declares {declared} bytes (shape {:?}) but the array holds at most {total_bytes}",
                header.shape
            ));
        }
        Ok(Self { reader, header, rows_read: 0, buf: Vec::new() })
    }

    /// Number of rows (the first axis), or 1 for a 0-d array.
    pub fn num_rows(&self) -> usize {
        self.header.shape.first().copied().unwrap_or(1)
    }

    /// Elements per row.
    pub fn row_len(&self) -> usize {
        // Bounded: `from_reader` checked the whole size against the bytes present.
        self.header.shape.iter().skip(1).fold(1usize, |acc, &d| acc.saturating_mul(d))
    }

    fn read_bytes(&mut self, rows: usize) -> Result<&[u8], String> {
        if self.header.fortran_order && self.header.shape.len() > 1 {
            return Err("arrays in Fortran order are not supported (save with np.ascontiguousarray)".into());
        }
        let rows = rows.min(self.num_rows().saturating_sub(self.rows_read));
        let n = rows
            .checked_mul(self.row_len())
            .and_then(|e| e.checked_mul(self.header.elem_size_bytes()))
            .ok_or_else(|| "array too large".to_string())?;
        // Grow with the data actually read, never from a header's claim alone.
        self.buf.clear();
        let got = (&mut self.reader)
            .take(n as u64)
            .read_to_end(&mut self.buf)
            .map_err(|e| format!("cannot read array data ({e})"))?;
        if got != n {
            return Err("truncated array data".to_string());
        }
        self.rows_read += rows;
        Ok(&self.buf)
    }

    /// Reads the next `rows` rows (fewer at the end) as `f32`: a float32 array as it is, an
    /// integer or bool array (the data of an integer model input) converted, which is exact for
    /// magnitudes up to 2^24 (token ids, byte values, masks); a larger value is an error.
    pub fn read_f32_rows(&mut self, rows: usize, out: &mut Vec<f32>) -> Result<(), String> {
        let dtype = self.header.dtype;
        let bytes = self.read_bytes(rows)?;
        out.clear();
        let exact = |v: i64| -> Result<f32, String> {
            if v.unsigned_abs() <= MAX_EXACT_INT {
                Ok(v as f32)
            } else {
                Err(format!(
                    "integer value {v}, beyond 2^24: QuantBench holds integer inputs as float32, exact up to 2^24"
                ))
            }
        };
        match dtype {
            DType::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            DType::I64 => {
                for c in bytes.chunks_exact(8) {
                    out.push(exact(i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))?);
                }
            }
            DType::I32 => {
                for c in bytes.chunks_exact(4) {
                    out.push(exact(i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))?);
                }
            }
            DType::U8 => out.extend(bytes.iter().map(|&b| f32::from(b))),
            DType::Bool => out.extend(bytes.iter().map(|&b| f32::from(u8::from(b != 0)))),
            DType::F64 | DType::Other => return Err(format!("dtype {} (expected float32)", self.header.dtype_name())),
        }
        Ok(())
    }

    /// Reads the whole array as integers; the array must hold int64, int32 or uint8.
    pub fn read_all_i64(&mut self) -> Result<Vec<i64>, String> {
        let dtype = self.header.dtype;
        let rows = self.num_rows();
        let bytes = self.read_bytes(rows)?;
        match dtype {
            DType::I64 => Ok(bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect()),
            DType::I32 => {
                Ok(bytes.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect())
            }
            DType::U8 => Ok(bytes.iter().map(|&b| i64::from(b)).collect()),
            _ => Err(format!("dtype {} (expected an integer type)", self.header.dtype_name())),
        }
    }
}

/// The array names (without `.npy`) in a `.npz` archive, sorted.
pub(crate) fn npz_keys(path: &Path) -> Result<Vec<String>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| format!("not a valid .npz archive ({e})"))?;
    let mut keys: Vec<String> =
        archive.file_names().filter_map(|n| n.strip_suffix(".npy")).map(str::to_string).collect();
    keys.sort();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(header: &str, expect: Result<(DType, bool, Vec<usize>), &str>) {
        let got = parse_header_dict(header).map(|h| (h.dtype, h.fortran_order, h.shape));
        assert_eq!(got, expect.map_err(str::to_string), "{header}");
    }

    #[test]
    fn parses_headers() {
        check("{'descr': '<f4', 'fortran_order': False, 'shape': (256, 64), }", Ok((DType::F32, false, vec![256, 64])));
        check("{'descr': '<i8', 'fortran_order': False, 'shape': (300,), }", Ok((DType::I64, false, vec![300])));
        check("{'descr': '<f8', 'fortran_order': True, 'shape': (), }", Ok((DType::F64, true, vec![])));
        check("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", Ok((DType::Other, false, vec![2, 3])));
        check("{'fortran_order': False, 'shape': (2, 3), }", Err("malformed .npy header: no 'descr'"));
        check("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", Err("malformed .npy shape '2, x'"));
    }

    /// An in-memory `.npy` stream of `descr` with `data` (row-major).
    fn stream(descr: &str, shape: &str, data: &[u8]) -> NpyStream {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend_from_slice(data);
        let total = bytes.len() as u64;
        NpyStream::from_reader(Box::new(std::io::Cursor::new(bytes)), total).expect("valid stream")
    }

    #[test]
    fn integer_and_bool_arrays_read_exactly_as_f32_up_to_2_pow_24() {
        let ids: Vec<u8> = [0i64, 255, 50_000, 1 << 24].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = Vec::new();
        stream("<i8", "(2, 2)", &ids).read_f32_rows(2, &mut out).expect("token ids");
        assert_eq!(out, [0.0, 255.0, 50_000.0, 16_777_216.0]);
        stream("|b1", "(1, 3)", &[1, 0, 1]).read_f32_rows(1, &mut out).expect("mask");
        assert_eq!(out, [1.0, 0.0, 1.0]);
        let big: Vec<u8> = [(1i32 << 24) + 1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let e = stream("<i4", "(1, 1)", &big).read_f32_rows(1, &mut out).expect_err("not exact in f32");
        assert!(e.contains("16777217") && e.contains("2^24"), "{e}");
        let e = stream("<f8", "(1, 1)", &1f64.to_le_bytes()).read_f32_rows(1, &mut out).expect_err("f64");
        assert!(e.contains("float64"), "{e}");
    }

    #[test]
    fn rejects_bad_magic() {
        let mut r: &[u8] = b"hello world, not numpy";
        assert_eq!(read_header(&mut r).unwrap_err(), "not a .npy array (bad magic bytes)");
        let mut r: &[u8] = b"\x93NUM";
        assert_eq!(read_header(&mut r).unwrap_err(), "not a .npy array (too short)");
    }
}
