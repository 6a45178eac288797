//! One run is one trace: HTTP submit → publish → consume → venv → script → result commit,
//! exported over OTLP/HTTP to a small receiver on 127.0.0.1, with spans from the producer
//! (in this process) and the consumer (a separate process, configured by `OTEL_*`
//! variables as in production).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use runfleet_common::config::{LogConfig, LogFormat};
use runfleet_common::telemetry::{self, TraceExport};
use runfleet_tests::{Fleet, FleetOptions, kill_tree};
use serde_json::json;

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    run_id: Option<String>,
}

type Received = Arc<Mutex<Vec<ReceivedSpan>>>;

/// An OTLP/HTTP (protobuf) trace receiver on 127.0.0.1.
struct OtlpReceiver {
    base: String,
    spans: Received,
}

async fn export(
    State(spans): State<Received>,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
    let mut got = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| string_value(a.value.as_ref()?.value.as_ref()?))
            .unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            got.push(ReceivedSpan {
                service: service.clone(),
                name: span.name.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                run_id: span
                    .attributes
                    .iter()
                    .find(|a| a.key == "run_id")
                    .and_then(|a| string_value(a.value.as_ref()?.value.as_ref()?)),
            });
        }
    }
    ([("content-type", "application/x-protobuf")], Vec::new())
}

fn string_value(v: &AnyValue) -> Option<String> {
    match v {
        AnyValue::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl OtlpReceiver {
    async fn start() -> OtlpReceiver {
        let spans = Received::default();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        OtlpReceiver { base, spans }
    }

    fn of_trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Waits until spans named `names` (service, span name) of `trace_id` have arrived.
    async fn wait_for(&self, trace_id: &str, names: &[(&str, &str)]) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.of_trace(trace_id);
            let missing: Vec<_> = names
                .iter()
                .filter(|(svc, name)| !spans.iter().any(|s| s.service == *svc && s.name == *name))
                .collect();
            if missing.is_empty() {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "spans {missing:?} of trace {trace_id} never arrived; got {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

const SCRIPT: &str = "import json, os\n\
json.dump({'traceparent': os.environ.get('TRACEPARENT')}, open(os.environ['RUNFLEET_RESULT_PATH'], 'w'))\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_submitted_run_is_one_trace_across_producer_consumer_and_script() {
    let receiver = OtlpReceiver::start().await;
    // The producer runs in this process: its spans go to the receiver too.
    let producer_telemetry = telemetry::init_with(
        &LogConfig {
            format: LogFormat::Pretty,
            level: "warn".into(),
        },
        "runfleet-producer",
        TraceExport::Endpoint(receiver.base.clone()),
    );
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    let log_path = fleet.work_dir.join("consumer-process.log");
    std::fs::create_dir_all(&fleet.work_dir).unwrap();
    let mut consumer = fleet
        .consumer_command()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.base)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("RUNFLEET_LOG__FORMAT", "json")
        .env("RUNFLEET_LOG__LEVEL", "info")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start runfleet-consumer");
    fleet.register("traced.py", SCRIPT).await;

    // The client sends its own trace context: the run joins the client's trace.
    let client_trace = uuid::Uuid::now_v7().simple().to_string();
    let client_span = "b7ad6b7169203331";
    let response = fleet
        .http
        .post(format!("{}/runs", fleet.base))
        .header("traceparent", format!("00-{client_trace}-{client_span}-01"))
        .json(&json!({"script": "traced.py"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let accepted: serde_json::Value = response.json().await.unwrap();
    assert_eq!(accepted["trace_id"], json!(client_trace), "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();

    let run = fleet.wait_final(&id, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trace_id"], json!(client_trace));
    let script_traceparent = run["result"]["traceparent"].as_str().unwrap_or_default();
    assert_eq!(
        telemetry::trace_id_of(script_traceparent),
        Some(client_trace.as_str()),
        "the script gets TRACEPARENT in its env: {run}"
    );

    producer_telemetry.shutdown();
    let spans = receiver
        .wait_for(
            &client_trace,
            &[
                ("runfleet-producer", "POST /runs"),
                ("runfleet-producer", "publish"),
                ("runfleet-consumer", "run"),
                ("runfleet-consumer", "venv"),
                ("runfleet-consumer", "script"),
                ("runfleet-consumer", "result_commit"),
            ],
        )
        .await;
    let find = |svc: &str, name: &str| {
        spans
            .iter()
            .find(|s| s.service == svc && s.name == name)
            .unwrap()
    };
    let http = find("runfleet-producer", "POST /runs");
    let consumed = find("runfleet-consumer", "run");
    assert_eq!(
        http.parent_span_id, client_span,
        "the API span continues the client's"
    );
    assert_eq!(
        consumed.parent_span_id, http.span_id,
        "the consumer's span is a child of the submit request's"
    );
    assert_eq!(consumed.run_id.as_deref(), Some(id.as_str()));
    for child in ["venv", "script", "result_commit"] {
        assert_eq!(
            find("runfleet-consumer", child).parent_span_id,
            consumed.span_id,
            "{child} is a step of the consumer's run span"
        );
    }
    // One trace: every span about this run, from any process, is in the client's trace.
    let all = receiver.spans.lock().unwrap().clone();
    let stray: Vec<_> = all
        .iter()
        .filter(|s| s.run_id.as_deref() == Some(id.as_str()) && s.trace_id != client_trace)
        .collect();
    assert!(
        stray.is_empty(),
        "spans of run {id} outside its trace: {stray:#?}"
    );

    // Logs: every consumer line about the run is JSON and carries its run id, queue,
    // attempt and trace id.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let mut about_run = Vec::new();
    for line in log.lines() {
        let entry: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        let run_span = entry["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["name"] == "run"));
        let mentions = line.contains(id.as_str());
        if let Some(span) = run_span.filter(|s| s["run_id"] == json!(id)) {
            assert_eq!(span["queue"], "default", "{line}");
            assert_eq!(span["attempt"], 1, "{line}");
            assert_eq!(span["trace_id"], json!(client_trace), "{line}");
            about_run.push(entry["message"].as_str().unwrap_or_default().to_string());
        } else {
            assert!(!mentions, "a line about run {id} outside its span: {line}");
        }
    }
    for expected in ["run started", "run finished"] {
        assert!(
            about_run.iter().any(|m| m == expected),
            "no '{expected}' line in {about_run:?}"
        );
    }

    kill_tree(consumer.id());
    let _ = consumer.wait();
    drop(fleet);
}
