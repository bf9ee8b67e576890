//! The path prompt: every place that opens a file (model, data set, image folder, recipe) opens
//! this window, where the path can be typed (checked as it is typed), picked from the recent
//! ones, or chosen with the system dialog ("Browse…"). Where the system dialog cannot open (a
//! desktop without a file-chooser portal), the window says so and the typed path still works.

use std::path::{Path, PathBuf};

use quantbench_core::worker::DataRole;

use super::actions::{Action, FilePurpose};
use super::context::ViewContext;
use super::tokens;

/// Shown when the system file dialog answered at once without a file: it could not open.
pub const NO_DIALOG: &str =
    "The system file dialog could not open here (no file-chooser portal on this desktop): type the path instead.";

/// A system dialog that answers without a file this soon did not open (no user cancels so fast).
pub const DIALOG_FAILED_WITHIN: std::time::Duration = std::time::Duration::from_millis(400);

/// How far below the window's top edge the prompt opens.
const PROMPT_TOP: f32 = 120.0;

/// The prompt's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathPromptState {
    /// What the open prompt chooses (`None`: closed).
    pub purpose: Option<FilePurpose>,
    /// The path as typed.
    pub text: String,
    /// Whether the system dialog failed to open for this prompt.
    pub dialog_failed: bool,
}

impl PathPromptState {
    /// Opens the prompt for `purpose`, the field holding `text`.
    pub fn open(&mut self, purpose: FilePurpose, text: String) {
        *self = Self { purpose: Some(purpose), text, dialog_failed: false };
    }
}

/// The window title for `purpose`.
pub fn title(purpose: FilePurpose) -> &'static str {
    match purpose {
        FilePurpose::Model => "Open model",
        FilePurpose::Data(DataRole::Calibration) => "Calibration data",
        FilePurpose::Data(DataRole::Evaluation) => "Evaluation data",
        FilePurpose::ImageFolder(DataRole::Calibration) => "Calibration image folder",
        FilePurpose::ImageFolder(DataRole::Evaluation) => "Evaluation image folder",
        FilePurpose::Recipe => "Open recipe",
        FilePurpose::Export(_) | FilePurpose::SaveView(..) => "Save as",
    }
}

/// `text` as a path: trimmed, surrounding quotes removed, `~` expanded.
pub fn expand(text: &str) -> PathBuf {
    let t = text.trim().trim_matches(|c| c == '"' || c == '\'');
    match (t.strip_prefix("~/").or(if t == "~" { Some("") } else { None }), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(t),
    }
}

/// Checks a typed path for `purpose`: the path, or why it cannot be opened.
pub fn check(purpose: FilePurpose, text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        return Err("type a path".into());
    }
    let path = expand(text);
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    let meta = std::fs::metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("no such file or folder: {}", path.display()),
        _ => format!("cannot read {}: {e}", path.display()),
    })?;
    let wants = |exts: &[&str], what: &str| {
        if meta.is_dir() {
            Err(format!("a folder, not {what}"))
        } else if exts.contains(&ext.as_str()) {
            Ok(path.clone())
        } else {
            Err(format!("not {what} (.{})", exts.join(", .")))
        }
    };
    match purpose {
        FilePurpose::Model => wants(&["onnx"], "an ONNX model"),
        FilePurpose::Recipe => wants(&["json"], "a recipe"),
        // A data set is a NumPy file or a folder of images.
        FilePurpose::Data(_) | FilePurpose::ImageFolder(_) if meta.is_dir() => Ok(path),
        FilePurpose::Data(_) => wants(&["npz", "npy"], "a NumPy data file or an image folder"),
        FilePurpose::ImageFolder(_) => Err("not a folder".into()),
        FilePurpose::Export(_) | FilePurpose::SaveView(..) => Ok(path),
    }
}

/// Checks a typed path to write to: its folder must exist, and it must not be a folder itself.
pub fn check_save(text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        return Err("type a path".into());
    }
    let path = expand(text);
    if path.is_dir() {
        return Err(format!("a folder: add a file name to {}", path.display()));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(format!("no such folder: {}", parent.display()));
    }
    Ok(path)
}

/// A typed save path's check, drawn under its field; the path when it can be written. `written`
/// is a file this window just wrote (no "replaces" for it).
pub fn save_check_ui(ui: &mut egui::Ui, text: &str, written: Option<&Path>) -> Option<PathBuf> {
    match check_save(text) {
        Ok(p) => {
            if p.exists() && written != Some(p.as_path()) {
                ui.colored_label(ui.visuals().warn_fg_color, format!("replaces {}", p.display()));
            }
            Some(p)
        }
        Err(e) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
            None
        }
    }
}

/// What opening `path` for `purpose` asks the controller to do.
pub fn open_action(purpose: FilePurpose, path: PathBuf) -> Option<Action> {
    match purpose {
        FilePurpose::Model => Some(Action::OpenModel(path)),
        FilePurpose::Data(role) | FilePurpose::ImageFolder(role) => Some(Action::LoadData(role, path)),
        FilePurpose::Recipe => Some(Action::OpenRecipe(path)),
        FilePurpose::Export(_) | FilePurpose::SaveView(..) => None,
    }
}

/// The recent paths offered for `purpose`, newest first.
fn recent<'a>(ctx: &'a ViewContext, purpose: FilePurpose) -> &'a [PathBuf] {
    match purpose {
        FilePurpose::Model => &ctx.settings.recent_models,
        FilePurpose::Data(_) | FilePurpose::ImageFolder(_) => &ctx.settings.recent_data,
        FilePurpose::Recipe => &ctx.settings.recent_recipes,
        FilePurpose::Export(_) | FilePurpose::SaveView(..) => &[],
    }
}

/// Draws the prompt when open.
pub fn prompt_window(
    ctx: &ViewContext,
    state: &mut PathPromptState,
    egui_ctx: &egui::Context,
    actions: &mut Vec<Action>,
) {
    let Some(purpose) = state.purpose else { return };
    let mut open = true;
    let mut done = false;
    egui::Window::new(title(purpose))
        .id(egui::Id::unique("path_prompt"))
        .open(&mut open)
        .resizable(false)
        .collapsible(false)
        .pivot(egui::Align2::CENTER_TOP)
        .default_pos(egui_ctx.content_rect().center_top() + egui::vec2(0.0, PROMPT_TOP))
        .show(egui_ctx, |ui| {
            if state.dialog_failed {
                ui.colored_label(ui.visuals().warn_fg_color, NO_DIALOG);
            }
            let checked = check(purpose, &state.text);
            let mut submitted = false;
            ui.horizontal(|ui| {
                ui.label("Path:");
                let edit = ui.add(
                    egui::TextEdit::singleline(&mut state.text)
                        .id(egui::Id::unique("path_prompt_text"))
                        .hint_text("/path/to/file")
                        .desired_width(420.0),
                );
                submitted = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if ui.button("Browse…").on_hover_text("Choose with the system file dialog").clicked() {
                    actions.push(Action::BrowseFile(purpose));
                }
            });
            match &checked {
                Ok(p) if p.is_dir() => ui.colored_label(tokens::GOOD, format!("ready: image folder {}", p.display())),
                Ok(p) => ui.colored_label(tokens::GOOD, format!("ready: {}", p.display())),
                Err(e) => ui.colored_label(ui.visuals().error_fg_color, e),
            };
            let recent = recent(ctx, purpose);
            if !recent.is_empty() {
                ui.add_space(tokens::SECTION_SPACE / 2.0);
                ui.label("Recent:");
                for p in recent {
                    if ui.selectable_label(false, p.display().to_string()).clicked() {
                        state.text = p.display().to_string();
                    }
                }
            }
            ui.add_space(tokens::SECTION_SPACE / 2.0);
            ui.horizontal(|ui| {
                let open_clicked = ui.add_enabled(checked.is_ok(), egui::Button::new("Open")).clicked();
                if let (true, Ok(path)) = (open_clicked || submitted, checked) {
                    actions.extend(open_action(purpose, path));
                    done = true;
                }
                if ui.button("Close").clicked() {
                    done = true;
                }
            });
        });
    if !open || done {
        state.purpose = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_paths_are_checked_for_what_they_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, b"x").expect("write");
            p.display().to_string()
        };
        let (model, data, recipe, text) = (file("m.onnx"), file("d.npz"), file("r.json"), file("notes.txt"));
        let folder = dir.path().display().to_string();
        let calib = FilePurpose::Data(DataRole::Calibration);
        assert!(check(FilePurpose::Model, &model).is_ok());
        assert!(check(FilePurpose::Model, &format!("  \"{model}\" ")).is_ok(), "quotes and spaces are trimmed");
        assert!(check(FilePurpose::Model, &data).unwrap_err().contains("not an ONNX model"));
        assert!(check(FilePurpose::Model, &folder).unwrap_err().contains("a folder"));
        assert!(check(FilePurpose::Model, "").unwrap_err().contains("type a path"));
        assert!(check(FilePurpose::Model, &format!("{folder}/nope.onnx")).unwrap_err().contains("no such file"));
        assert!(check(calib, &data).is_ok() && check(calib, &folder).is_ok());
        assert!(check(calib, &text).unwrap_err().contains("not a NumPy data file"));
        assert!(check(FilePurpose::ImageFolder(DataRole::Evaluation), &data).unwrap_err().contains("not a folder"));
        assert!(check(FilePurpose::Recipe, &recipe).is_ok());
        assert!(check(FilePurpose::Recipe, &model).is_err());
        assert_eq!(check_save(&format!("{folder}/new.onnx")), Ok(dir.path().join("new.onnx")));
        assert!(check_save(&folder).unwrap_err().contains("a folder"));
        assert!(check_save(&format!("{folder}/missing/x.onnx")).unwrap_err().contains("no such folder"));
        assert!(check_save("  ").is_err());
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(expand("~/x.onnx"), Path::new(&home).join("x.onnx"));
        }
    }
}
