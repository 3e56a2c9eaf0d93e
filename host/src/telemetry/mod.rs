//! Logs, traces and metrics.
//!
//! Logs and spans go through `tracing` (text or JSON lines on stderr). Metrics are kept in
//! a Prometheus registry ([`Metrics`]) and served as text by `GET /metrics`.

mod metrics;

pub use metrics::Metrics;

use crate::config::LogFormat;

/// Sets up logging for the process: `filter` is a tracing filter such as `info` (the
/// environment variable `PAYRULES_LOG`, when set, wins), written on stderr, in colour only
/// when stderr is a terminal.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PAYRULES_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    // Colours for a person at a terminal; plain text for a file, a pipe or a collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // A second initialisation (tests in one process) keeps the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
