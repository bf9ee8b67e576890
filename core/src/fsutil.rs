//! File writing: every file QuantBench produces is written atomically (temp file + rename in the
//! same directory), so a failure never leaves a partial file behind.

use std::io::Write as _;
use std::path::Path;

use crate::error::{Error, Result};

/// The directory `path` is written into, checked to be one.
fn output_dir(path: &Path) -> Result<&Path> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let refuse = |kind, what: &str| Err(Error::io("cannot write output", std::io::Error::new(kind, what), path));
    if dir.is_file() {
        return refuse(std::io::ErrorKind::NotADirectory, "its parent is a file, not a directory");
    }
    if !dir.is_dir() {
        return refuse(std::io::ErrorKind::NotFound, "the directory does not exist");
    }
    if path.is_dir() {
        return refuse(std::io::ErrorKind::IsADirectory, "it is a directory");
    }
    Ok(dir)
}

/// Checks, before any work, that `path` can be written: its directory exists and accepts a new
/// file (tried with a probe file, removed again), and `path` is not a directory. Permissions
/// alone do not tell (root ignores them; read-only mounts and `/proc` refuse everyone).
pub fn check_writable(path: &Path) -> Result<()> {
    let dir = output_dir(path)?;
    let name = path.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy().to_string());
    let probe = dir.join(format!(".{name}.{}.probe", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| Error::io("cannot write output", e, path))?;
    std::fs::remove_file(&probe).map_err(|e| Error::io("cannot write output", e, path))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = output_dir(path)?;
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

/// Writes every `(path, bytes)` atomically, in order; when one cannot be written, the files this
/// call already wrote are removed again, so a failed run leaves no output behind.
pub fn write_all_or_none(files: &[(&Path, &[u8])]) -> Result<()> {
    for (i, (path, bytes)) in files.iter().enumerate() {
        if let Err(e) = write_atomic(path, bytes) {
            for (written, _) in &files[..i] {
                let _ = std::fs::remove_file(written);
            }
            return Err(e);
        }
    }
    Ok(())
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
        let err = check_writable(Path::new("/nonexistent/dir/out.json")).expect_err("must fail");
        assert!(err.to_string().contains("the directory does not exist"), "{err}");
    }

    #[test]
    fn check_writable_leaves_nothing_and_names_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        check_writable(&dir.path().join("out.onnx")).expect("writable");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0, "probe removed");
        let file = dir.path().join("file.txt");
        std::fs::write(&file, "x").expect("write");
        let err = check_writable(&file.join("out.onnx")).expect_err("under a file");
        assert!(err.to_string().contains("its parent is a file, not a directory"), "{err}");
        let err = check_writable(dir.path()).expect_err("a directory");
        assert!(err.to_string().contains("it is a directory"), "{err}");
        // /proc refuses new files even to root.
        assert!(check_writable(Path::new("/proc/quantbench-out.json")).is_err());
    }
}
