//! The `quantbench` binary: the GUI when run without a subcommand, headless subcommands otherwise.

mod cli;
mod gui;
mod samples;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // Panics are reported once, on one line, without a backtrace; jobs catch their own.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("internal error: {msg}{place}");
    }));
    let args = cli::Cli::parse();
    let result = match args.command {
        Some(cmd) => cli::run(cmd),
        None => gui::run(args.model),
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
