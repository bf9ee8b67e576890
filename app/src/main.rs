//! The `quantbench` binary: the GUI when run without a subcommand, headless subcommands otherwise.

mod cli;
#[cfg(feature = "gui")]
mod gui;
#[cfg(feature = "gui")]
mod samples;

use std::process::ExitCode;

use clap::Parser as _;

/// The last panic caught by `quantbench_core::panics::catch`, as "message at file:line".
static CAUGHT_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn main() -> ExitCode {
    // Panics are reported once, on one line, without a backtrace; jobs catch their own. A panic
    // that core catches becomes its error (the hook only keeps it); one that escapes a headless
    // subcommand becomes "error: internal error: ..." and exit status 1.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        if quantbench_core::panics::is_caught() {
            if let Ok(mut last) = CAUGHT_PANIC.lock() {
                *last = Some(format!("{msg}{place}"));
            }
        } else {
            eprintln!("internal error: {msg}{place}");
        }
    }));
    let args = cli::Cli::parse();
    let result = match args.command {
        Some(cmd) => quantbench_core::panics::catch(|| cli::run(cmd)).unwrap_or_else(|_| {
            let what = CAUGHT_PANIC.lock().ok().and_then(|mut l| l.take()).unwrap_or_else(|| "a panic".into());
            Err(anyhow::anyhow!("internal error: {what}"))
        }),
        #[cfg(feature = "gui")]
        None => gui::run(args.model, args.calib, args.eval, args.recipe),
        #[cfg(not(feature = "gui"))]
        None => {
            let _ = (args.model, args.calib, args.eval, args.recipe);
            Err(anyhow::anyhow!(
                "this quantbench was built without the GUI (feature `gui`); give a subcommand, see --help"
            ))
        }
    };
    if std::env::var_os("QB_REPORT_PEAK_RSS").is_some() {
        report_peak_rss();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Collapses a multi-line error chain into one line.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// Prints the process's peak resident set size (Linux `VmHWM`) on stderr, for the memory
/// benchmarks.
fn report_peak_rss() {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
    {
        let kib: String = line.chars().filter(char::is_ascii_digit).collect();
        eprintln!("peak_rss_kib: {kib}");
    }
}
