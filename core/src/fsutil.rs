//! File writing: every file QuantBench produces is written atomically (temp file + rename in the
//! same directory), so a failure never leaves a partial file behind.

use std::io::Write as _;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::io(
            "cannot write output",
            std::io::Error::new(std::io::ErrorKind::NotFound, "the directory does not exist"),
            path,
        ));
    }
    let name = path.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy().to_string());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("cannot write output", e, path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("out.json");
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two").expect("rewrite");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1, "no temp file left");
    }

    #[test]
    fn missing_directory_is_an_error() {
        let err = write_atomic(Path::new("/nonexistent/dir/out.json"), b"x").expect_err("must fail");
        assert!(err.to_string().starts_with("cannot write output"), "{err}");
    }
}
