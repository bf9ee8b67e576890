//! Settings that persist between runs (eframe persistence). Runtime state is never serialized.

use std::path::{Path, PathBuf};

use quantbench_core::data::Preprocess;
use serde::{Deserialize, Serialize};

/// How many recent files the File menu keeps.
pub const MAX_RECENT: usize = 8;

/// The persisted settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Dark (true) or light theme.
    pub dark_mode: bool,
    /// Recently opened models, newest first.
    pub recent_models: Vec<PathBuf>,
    /// Recently opened recipes, newest first.
    pub recent_recipes: Vec<PathBuf>,
    /// Recently loaded data sets (files and image folders), newest first.
    pub recent_data: Vec<PathBuf>,
    /// Whether the activation histogram uses a log scale.
    pub log_histogram: bool,
    /// How images of an image-folder data set become tensors.
    pub preprocess: Preprocess,
    /// Memory the evaluations' caches may use, MiB.
    pub memory_budget_mib: usize,
    /// The folder of the last export (the export dialog proposes it over the model's own).
    pub last_export_dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            dark_mode: true,
            recent_models: Vec::new(),
            recent_recipes: Vec::new(),
            recent_data: Vec::new(),
            log_histogram: true,
            preprocess: Preprocess::default(),
            last_export_dir: None,
            memory_budget_mib: DEFAULT_MEMORY_BUDGET_MIB,
        }
    }
}

/// The memory budget of a fresh install (the core's default).
pub const DEFAULT_MEMORY_BUDGET_MIB: usize = quantbench_core::simulate::DEFAULT_CACHE_BUDGET_MIB;

impl Settings {
    /// Puts `path` first in `list`, without duplicates, keeping at most [`MAX_RECENT`].
    pub fn remember(list: &mut Vec<PathBuf>, path: &Path) {
        list.retain(|p| p != path);
        list.insert(0, path.to_path_buf());
        list.truncate(MAX_RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_list_is_deduplicated_newest_first_and_bounded() {
        let mut list = Vec::new();
        for i in 0..10 {
            Settings::remember(&mut list, Path::new(&format!("m{i}.onnx")));
        }
        Settings::remember(&mut list, Path::new("m5.onnx"));
        assert_eq!(list.len(), MAX_RECENT);
        assert_eq!(list[0], PathBuf::from("m5.onnx"));
        assert_eq!(list.iter().filter(|p| p.as_path() == std::path::Path::new("m5.onnx")).count(), 1);
    }

    #[test]
    fn missing_fields_take_defaults() {
        let s: Settings = serde_json::from_str(r#"{"dark_mode": false}"#).expect("parse");
        assert!(!s.dark_mode);
        assert!(s.log_histogram);
        assert_eq!(s.preprocess, Preprocess::default());
    }

    #[test]
    fn preprocessing_persists() {
        let mut s = Settings::default();
        s.preprocess.resize_shorter = Some(20);
        s.preprocess.mean = vec![0.5, 0.25, 0.125];
        s.preprocess.layout = Some(quantbench_core::data::Layout::Nhwc);
        let back: Settings = serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("parse");
        assert_eq!(back, s);
    }
}
