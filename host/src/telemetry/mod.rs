//! Logs, traces and metrics.
//!
//! Logs and spans go through `tracing` (text or JSON lines on stderr). Metrics are kept in
//! a Prometheus registry ([`Metrics`]) and served as text by `GET /metrics`.

mod metrics;

pub use metrics::Metrics;

use crate::config::LogFormat;

/// The target of the lines rules log through their `log` capability.
pub const RULE_LOG_TARGET: &str = "payrules::rule";

/// Sets up logging for the process: `filter` is a tracing filter such as `info` (the
/// environment variable `PAYRULES_LOG`, when set, wins), written on stderr, in colour only
/// when stderr is a terminal. What rules log is kept in their decision's trace (sealed in
/// the store) and reaches the log only when the filter names [`RULE_LOG_TARGET`]: its text
/// is the rule author's, and may quote the payment's parties, which the log must not hold.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = std::env::var("PAYRULES_LOG").unwrap_or_else(|_| filter.to_owned());
    let filter = tracing_subscriber::EnvFilter::new(with_rule_lines_off_unless_named(&filter));
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

/// `filter` with the rules' own lines turned off, unless it names their target.
fn with_rule_lines_off_unless_named(filter: &str) -> String {
    if filter.contains(RULE_LOG_TARGET) {
        filter.to_owned()
    } else if filter.trim().is_empty() {
        format!("{RULE_LOG_TARGET}=off")
    } else {
        format!("{filter},{RULE_LOG_TARGET}=off")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_lines_are_off_unless_the_filter_names_them() {
        assert_eq!(
            with_rule_lines_off_unless_named("info"),
            "info,payrules::rule=off"
        );
        assert_eq!(
            with_rule_lines_off_unless_named("debug,payrules::rule=info"),
            "debug,payrules::rule=info"
        );
        assert_eq!(with_rule_lines_off_unless_named(""), "payrules::rule=off");
    }
}
