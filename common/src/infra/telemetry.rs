//! Logs and traces: JSON lines (or readable lines) on stderr, and OpenTelemetry spans
//! exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! Spans always get OpenTelemetry ids, exporting or not, so every run has a trace id (in
//! the API and on its log lines) and a `traceparent` its messages carry from producer to
//! consumer to script. The standard `OTEL_*` variables (service name, headers, timeout,
//! batch settings) are read by the OpenTelemetry SDK itself.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogConfig, LogFormat};

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceExport {
    /// As the `OTEL_EXPORTER_OTLP_*` variables say: nowhere when no endpoint is set.
    FromEnv,
    /// To this OTLP/HTTP base URL (`/v1/traces` is appended), e.g. for tests.
    Endpoint(String),
}

/// The installed tracer provider; [`Telemetry::shutdown`] flushes spans not yet sent.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter (call once, at exit).
    pub fn shutdown(&self) {
        if let Some(provider) = &self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("runfleet: could not flush traces at exit: {e}");
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Installs logging and tracing for `service` (e.g. `runfleet-producer`); spans are
/// exported when the OTLP endpoint variables are set. `RUST_LOG` overrides `log.level`.
pub fn init(config: &LogConfig, service: &str) -> Telemetry {
    init_with(config, service, TraceExport::FromEnv)
}

/// [`init`] with an explicit export target. Installs the global subscriber once; later
/// calls (tests hosting several components in one process) change nothing.
pub fn init_with(config: &LogConfig, service: &str, export: TraceExport) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match config.format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => fmt.with_filter(filter).boxed(),
    };

    let provider = tracer_provider(service, &export);
    let tracer = provider.tracer("runfleet");
    // Spans of our own crates only, whatever the log level: a quiet log must not break a
    // trace.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(Targets::new().with_target("runfleet", tracing::Level::INFO));
    let installed = Registry::default().with(fmt).with(otel).try_init().is_ok();
    Telemetry {
        provider: installed.then_some(provider),
    }
}

fn tracer_provider(service: &str, export: &TraceExport) -> SdkTracerProvider {
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name(service.to_string());
    }
    let mut builder = SdkTracerProvider::builder().with_resource(resource.build());
    let exporter = match export {
        TraceExport::Endpoint(base) => Some(
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')))
                .build(),
        ),
        TraceExport::FromEnv
            if env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
                || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") =>
        {
            Some(
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .build(),
            )
        }
        TraceExport::FromEnv => None,
    };
    match exporter {
        Some(Ok(exporter)) => builder = builder.with_batch_exporter(exporter),
        Some(Err(e)) => {
            eprintln!("runfleet: traces are not exported (check OTEL_EXPORTER_OTLP_*): {e}");
        }
        None => {}
    }
    builder.build()
}

/// The W3C `traceparent` of the current span (None outside any span).
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Makes `span` a child of the remote span in `traceparent` (ignored when malformed).
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Records the span's trace id in its `trace_id` field (declared `Empty` by the caller),
/// so every log line inside the span carries it.
pub fn record_trace_id(span: &tracing::Span) {
    if let Some(tp) = span.in_scope(current_traceparent)
        && let Some(trace_id) = trace_id_of(&tp)
    {
        span.record("trace_id", trace_id);
    }
}

/// The trace id (32 hex digits) inside a `traceparent`, if it is well formed.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    (trace_id.len() == 32
        && trace_id.bytes().all(|b| b.is_ascii_hexdigit())
        && trace_id.bytes().any(|b| b != b'0'))
    .then_some(trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_only_from_well_formed_traceparents() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id_of(tp), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(trace_id_of("00-xyz-00f067aa0ba902b7-01"), None);
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of(""), None);
    }

    #[test]
    fn a_span_gets_a_traceparent_and_children_keep_its_trace() {
        let _t = init(
            &LogConfig {
                format: LogFormat::Pretty,
                level: "warn".into(),
            },
            "runfleet-test",
        );
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span = tracing::info_span!("child");
        set_parent(&span, parent);
        let inside = span.in_scope(current_traceparent).expect("a traceparent");
        assert_eq!(
            trace_id_of(&inside),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert!(
            !inside.contains("00f067aa0ba902b7"),
            "a new span id: {inside}"
        );
        assert_eq!(current_traceparent(), None, "no span, no traceparent");
    }
}
