//! Logs, traces and metrics.
//!
//! Logs and spans go through `tracing` (text or JSON lines on stderr); with an OTLP endpoint
//! configured, the spans are also exported to an OpenTelemetry collector, continuing the
//! W3C trace a client sends. Metrics are kept in a Prometheus registry ([`Metrics`]) and
//! served as text by `GET /metrics`.

mod metrics;
pub mod overview;

pub use metrics::Metrics;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, fmt};

use crate::config::{LogFormat, TelemetryConfig};

/// The target of the lines rules log through their `log` capability.
pub const RULE_LOG_TARGET: &str = "payrules::rule";

/// What was set up for the process's telemetry; [`Telemetry::shutdown`] flushes the spans
/// not exported yet.
#[must_use = "shut it down at exit, or the last spans are not exported"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter (at most a few seconds).
    pub fn shutdown(self) {
        if let Some(traces) = self.traces
            && let Err(error) = traces.shutdown()
        {
            tracing::warn!("the last spans were not all exported: {error}");
        }
    }
}

/// Sets up logging for a command: `filter` is a tracing filter such as `warn`.
pub fn init_logging(format: LogFormat, filter: &str) {
    let _ = init(format, filter, &TelemetryConfig::default());
}

/// Sets up logging and tracing for the process. Logs: `filter` is a tracing filter such as
/// `info` (the environment variable `PAYRULES_LOG`, when set, wins), written on stderr, in
/// colour only when stderr is a terminal. What rules log is kept in their decision's trace
/// (sealed in the store) and reaches the log only when the filter names
/// [`RULE_LOG_TARGET`]: its text is the rule author's, and may quote the payment's parties,
/// which the log must not hold. Traces: with `telemetry.otlp_endpoint`, the request,
/// pipeline, stage and rule spans (payrules' own, at debug and above, whatever the log's
/// filter; never a rule's log lines) are exported over OTLP/HTTP in batches, from a thread
/// of their own. Call it outside any async runtime.
pub fn init(
    format: LogFormat,
    filter: &str,
    telemetry: &TelemetryConfig,
) -> Result<Telemetry, String> {
    let filter = std::env::var("PAYRULES_LOG").unwrap_or_else(|_| filter.to_owned());
    let filter = EnvFilter::new(with_rule_lines_off_unless_named(&filter));
    // Colours for a person at a terminal; plain text for a file, a pipe or a collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = match format {
        LogFormat::Text => fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let traces = telemetry
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| otlp(endpoint, telemetry))
        .transpose()?;
    let spans = traces.as_ref().map(|provider| {
        let own = Targets::new()
            .with_target("payrules", Level::DEBUG)
            .with_target(RULE_LOG_TARGET, LevelFilter::OFF);
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("payrules"))
            .with_filter(own)
    });
    // A second initialisation (tests in one process) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init();
    Ok(Telemetry { traces })
}

/// A tracer provider exporting to the OTLP/HTTP traces endpoint, in JSON, the share of
/// traces `sample_ratio` says (a client's sampling decision in its `traceparent` wins).
fn otlp(endpoint: &str, telemetry: &TelemetryConfig) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::trace::Sampler;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint {endpoint}: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            telemetry.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(telemetry.service_name.clone())
                .build(),
        )
        .build())
}

/// The W3C trace context a request carries (`traceparent`, `tracestate`), made the parent of
/// its span: a client's trace goes on through payrules. Without the header, or without an
/// exporter, it changes nothing.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract(&opentelemetry_http::HeaderExtractor(headers));
    let _ = span.set_parent(parent);
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
