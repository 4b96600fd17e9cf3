//! The commands the CLI dispatches to, one file each, and what they share: the error a
//! command fails with, how it ends the process, and how results read on a terminal.

mod area;
pub mod cache;
pub mod db;
pub mod healthcheck;
pub mod import;
pub mod pyramid;
pub mod seed;
pub mod serve;
mod signals;

/// Why a command failed; printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Failed(String),
    /// Stopped by a signal after finishing the work in flight; `code` is the exit status.
    #[error("{message}")]
    Interrupted { message: String, code: u8 },
}

impl CommandError {
    /// The process exit status: 130 (or 143) after SIGINT (SIGTERM), else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Failed(_) => 1,
            CommandError::Interrupted { code, .. } => *code,
        }
    }
}

/// A failure as one line, from any error or message.
pub fn fail(message: impl ToString) -> CommandError {
    CommandError::Failed(message.to_string())
}

/// Prints a failure as one line and gives the process's exit status.
pub fn finish(result: Result<(), CommandError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twine-heatmap: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}

/// `1234567` → `1.2 MB` (decimal units, like the size flags' default spelling).
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1_234_567), "1.2 MB");
        assert_eq!(human(1_000_000_000), "1.0 GB");
    }
}
