//! Per-request telemetry: the request span (a child of the caller's `traceparent`, if it
//! sent one) and the `runfleet_http_*` metrics, labelled by route template so that run ids
//! in paths never become label values.

use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramVec, IntCounterVec};
use runfleet_common::metrics::{counter, histogram};
use runfleet_common::telemetry;
use tracing::Instrument;

/// API requests by route template (never the raw path), method and status code.
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "runfleet_http_requests_total",
        "HTTP requests answered, by route template, method and status.",
        &["route", "method", "status"],
    )
});

/// API request latency by route template and method.
pub static HTTP_REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "runfleet_http_request_duration_seconds",
        "Time to answer an HTTP request, by route template and method.",
        &[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ],
        &["route", "method"],
    )
});

/// Route label of requests no route matched (404s of unknown paths).
const UNMATCHED: &str = "unmatched";

/// The method as a label: the standard ones by name, anything else as `OTHER` (a client
/// may send any token as a method; labels must stay bounded).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Axum middleware: wraps the request in a span and counts and times it.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, |m| m.as_str())
        .to_string();
    let method = method_label(request.method()).to_string();
    let span = tracing::info_span!(
        "http_request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    if let Some(tp) = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        telemetry::set_parent(&span, tp);
    }
    telemetry::record_trace_id(&span);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    HTTP_REQUESTS
        .with_label_values(&[&route, &method, &status.to_string()])
        .inc();
    HTTP_REQUEST_DURATION
        .with_label_values(&[&route, &method])
        .observe(started.elapsed().as_secs_f64());
    response
}
