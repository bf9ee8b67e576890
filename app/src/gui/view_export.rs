//! Saving views: CSV bytes, or a PNG cropped from a screenshot of the window, written atomically
//! on a short-lived thread so the UI never waits for the disk or the encoder.

use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, bounded};

use super::actions::{Action, SavedView, ViewFormat};
use super::path_prompt::save_check_ui;

/// How many finished saves may wait to be reported.
const SAVE_RESULTS: usize = 16;

/// What a save thread reports: the path written, or a one-line reason.
pub type SaveResult = Result<PathBuf, String>;

/// The save window: which view, in which format, to which path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveDialog {
    /// The view.
    pub view: SavedView,
    /// CSV or PNG.
    pub format: ViewFormat,
    /// Where (typed, or chosen with Browse).
    pub path: String,
}

/// Writes views to files off the UI thread.
#[derive(Debug)]
pub struct ViewSaver {
    tx: Sender<SaveResult>,
    rx: Receiver<SaveResult>,
}

impl Default for ViewSaver {
    fn default() -> Self {
        let (tx, rx) = bounded(SAVE_RESULTS);
        Self { tx, rx }
    }
}

impl ViewSaver {
    /// Writes `bytes` to `path` atomically on a background thread.
    pub fn save_bytes(&self, ctx: &egui::Context, path: PathBuf, bytes: Vec<u8>) {
        let (tx, ctx) = (self.tx.clone(), ctx.clone());
        self.spawn(move || {
            let result = quantbench_core::fsutil::write_atomic(&path, &bytes).map(|()| path).map_err(|e| e.to_string());
            report(&tx, &ctx, result);
        });
    }

    /// Asks for a screenshot of the next frame; when it arrives, `rect` (where the view was last
    /// drawn, `None` when it is not shown) is cropped out, encoded as PNG and written to `path` on
    /// a background thread.
    pub fn save_png(&self, ctx: &egui::Context, rect: Option<egui::Rect>, path: PathBuf) -> Result<(), String> {
        let rect = rect.ok_or_else(|| format!("the view is not shown: {}", path.display()))?;
        let pixels_per_point = ctx.pixels_per_point();
        let (tx, repaint) = (self.tx.clone(), ctx.clone());
        ctx.request_screenshot(move |image: Arc<egui::ColorImage>| {
            let (thread_tx, thread_ctx) = (tx.clone(), repaint.clone());
            let spawned = std::thread::Builder::new().name("save-png".into()).spawn(move || {
                let result = png_of_region(&image, rect, pixels_per_point).and_then(|png| {
                    quantbench_core::fsutil::write_atomic(&path, &png).map(|()| path).map_err(|e| e.to_string())
                });
                report(&thread_tx, &thread_ctx, result);
            });
            if let Err(e) = spawned {
                report(&tx, &repaint, Err(format!("cannot start a thread to save the image: {e}")));
            }
        });
        ctx.request_repaint();
        Ok(())
    }

    fn spawn(&self, work: impl FnOnce() + Send + 'static) {
        if let Err(e) = std::thread::Builder::new().name("save-view".into()).spawn(work) {
            let _ = self.tx.try_send(Err(format!("cannot start a thread to save the view: {e}")));
        }
    }

    /// Saves that finished since the last call.
    pub fn drain(&self) -> Vec<SaveResult> {
        self.rx.try_iter().collect()
    }
}

/// Save buttons of one view.
pub fn save_buttons(ui: &mut egui::Ui, view: SavedView, what: &str, actions: &mut Vec<Action>) {
    if ui.small_button(format!("{what} CSV")).on_hover_text("Save the data as CSV").clicked() {
        actions.push(Action::SaveView(view, ViewFormat::Csv, None));
    }
    if ui.small_button(format!("{what} PNG")).on_hover_text("Save the view as a PNG image").clicked() {
        actions.push(Action::SaveView(view, ViewFormat::Png, None));
    }
}

/// The save window: a path (typed, or chosen with Browse) and Save. Saving closes it first, so a
/// PNG shows the view, not the window.
pub fn save_window(state: &mut Option<SaveDialog>, ctx: &egui::Context, actions: &mut Vec<Action>) {
    let Some(dialog) = state else { return };
    let mut open = true;
    let mut close = false;
    let what = match dialog.format {
        ViewFormat::Csv => "CSV",
        ViewFormat::Png => "PNG",
    };
    egui::Window::new(format!("Save {} as {what}", dialog.view.stem().replace('_', " ")))
        .id(egui::Id::unique("save view"))
        .open(&mut open)
        .resizable(false)
        .collapsible(false)
        .show(ctx, |ui| {
            ui.horizontal(|ui| {
                ui.label("Path:");
                ui.add(egui::TextEdit::singleline(&mut dialog.path).desired_width(360.0));
                if ui.button("Browse...").clicked() {
                    actions.push(Action::BrowseSavePath(dialog.view, dialog.format));
                }
            });
            let path = save_check_ui(ui, &dialog.path, None);
            if ui.add_enabled(path.is_some(), egui::Button::new("Save")).clicked() {
                actions.push(Action::SaveView(dialog.view, dialog.format, path));
                close = true;
            }
        });
    if close || !open {
        *state = None;
    }
}

fn report(tx: &Sender<SaveResult>, ctx: &egui::Context, result: SaveResult) {
    // Waits for room: a result is never dropped (the app drains these every frame).
    let _ = tx.send(result);
    ctx.request_repaint();
}

/// The PNG of `rect` (points) of a screenshot taken at `pixels_per_point`, clipped to the image.
pub fn png_of_region(image: &egui::ColorImage, rect: egui::Rect, pixels_per_point: f32) -> Result<Vec<u8>, String> {
    let [w, h] = image.size;
    let px = |v: f32, max: usize| ((v * pixels_per_point).round().max(0.0) as usize).min(max);
    let (x0, x1) = (px(rect.min.x, w), px(rect.max.x, w));
    let (y0, y1) = (px(rect.min.y, h), px(rect.max.y, h));
    if x1 <= x0 || y1 <= y0 {
        return Err("the view is outside the window".into());
    }
    let region = image.region_by_pixels([x0, y0], [x1 - x0, y1 - y0]);
    let rgba: Vec<u8> = region.pixels.iter().flat_map(egui::Color32::to_srgba_unmultiplied).collect();
    let buffer = image::RgbaImage::from_raw((x1 - x0) as u32, (y1 - y0) as u32, rgba)
        .ok_or_else(|| "the screenshot has an unexpected size".to_string())?;
    let mut png = std::io::Cursor::new(Vec::new());
    buffer.write_to(&mut png, image::ImageFormat::Png).map_err(|e| format!("cannot encode the PNG: {e}"))?;
    Ok(png.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_the_view_at_the_screen_scale_and_clips_to_the_image() {
        let mut image = egui::ColorImage::filled([40, 30], egui::Color32::WHITE);
        image.pixels[2 * 40 + 4] = egui::Color32::RED;
        let rect = egui::Rect::from_min_max(egui::pos2(2.0, 1.0), egui::pos2(12.0, 6.0));
        let png = png_of_region(&image, rect, 2.0).expect("png");
        let decoded = image::load_from_memory(&png).expect("decodes").to_rgba8();
        assert_eq!(decoded.dimensions(), (20, 10));
        assert_eq!(decoded.get_pixel(0, 0).0, [255, 0, 0, 255], "pixel (4, 2) of the window");
        assert_eq!(decoded.get_pixel(1, 0).0, [255, 255, 255, 255]);
        let beyond = egui::Rect::from_min_max(egui::pos2(10.0, 10.0), egui::pos2(500.0, 500.0));
        let clipped = image::load_from_memory(&png_of_region(&image, beyond, 2.0).expect("png")).expect("decodes");
        assert_eq!((clipped.width(), clipped.height()), (20, 10));
        let outside = egui::Rect::from_min_max(egui::pos2(50.0, 50.0), egui::pos2(60.0, 60.0));
        assert!(png_of_region(&image, outside, 1.0).is_err());
    }

    #[test]
    fn bytes_are_written_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let saver = ViewSaver::default();
        let ctx = egui::Context::default();
        let path = dir.path().join("v.csv");
        saver.save_bytes(&ctx, path.clone(), b"a,b\n".to_vec());
        let result = saver.rx.recv_timeout(std::time::Duration::from_secs(10)).expect("reported");
        assert_eq!(result, Ok(path.clone()));
        assert_eq!(std::fs::read(&path).expect("written"), b"a,b\n");
        saver.save_bytes(&ctx, dir.path().join("missing/v.csv"), Vec::new());
        let failed = saver.rx.recv_timeout(std::time::Duration::from_secs(10)).expect("reported");
        assert!(failed.is_err_and(|e| e.contains("missing")));
    }
}
