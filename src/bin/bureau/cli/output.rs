//! What a command prints: text for people, or with the global `--output json` one JSON document
//! on standard output for scripts (errors still go to standard error with a non-zero exit); and
//! the progress bars long commands draw on standard error when it is a terminal.

use std::{io::IsTerminal, sync::OnceLock, time::Duration};

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// How a command's result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people: aligned lines.
    Text,
    /// For scripts: one JSON document on standard output.
    Json,
}

static FORMAT: OnceLock<Output> = OnceLock::new();

/// Sets the process's output format (once, from the parsed command line).
pub fn set(format: Output) {
    let _ = FORMAT.set(format);
}

/// Whether the result is to be printed as JSON.
pub fn json() -> bool {
    FORMAT.get() == Some(&Output::Json)
}

/// Prints `value` as one JSON document with `--output json`, or runs `text` otherwise.
pub fn emit(value: impl Serialize, text: impl FnOnce()) {
    if json() {
        match serde_json::to_string_pretty(&value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: result not printable as JSON: {e}"),
        }
    } else {
        text();
    }
}

/// A progress bar on standard error of `len` steps (a spinner when the length is unknown),
/// hidden when standard error is not a terminal (a script's log stays clean).
pub fn bar(len: Option<u64>, unit: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(8)
    } else {
        ProgressDrawTarget::hidden()
    };
    let pb = match len {
        Some(n) => ProgressBar::with_draw_target(Some(n), target).with_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}})"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, target).with_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {{msg}} {{human_pos}} {unit} ({{per_sec}}, {{elapsed}})"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// A spinner with a message, for a step of unknown length (a backup, a restore).
pub fn spinner(msg: &'static str) -> ProgressBar {
    let pb = bar(None, "");
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg);
    pb
}
