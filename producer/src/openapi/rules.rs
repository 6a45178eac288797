//! The field rules a derive cannot state: name and key patterns, ranges, the configured
//! queues and timeout ceiling, and "script or task". Each mirrors a check the handlers
//! make (`runfleet_common::names`, `NewRun::check`), so a client generated from the
//! document is refused nothing the document allows.

use runfleet_common::names::{MAX_PARAMETER_KEY, MAX_QUEUE_NAME, MAX_SCRIPT_NAME};
use runfleet_common::runs::{MAX_ATTEMPTS, MAX_BATCH, MAX_IDEMPOTENCY_KEY, SubmitPolicy};
use runfleet_common::schedules::{MAX_CATCHUP_LIMIT, MAX_PREVIEW};
use runfleet_common::scripts::{MAX_REQUIREMENT_LEN, MAX_REQUIREMENTS};
use serde_json::{Value, json};

/// Names of scripts, tasks, secrets and tokens (`names::is_valid_script_name`): a letter or
/// digit, then letters, digits and `_ . -`, with no `..`.
pub const NAME_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*\.?$";
/// Parameter keys (`names::is_valid_parameter_key`): each becomes a `--key` flag.
pub const PARAMETER_KEY_PATTERN: &str = r"^[A-Za-z_][A-Za-z0-9_-]*$";
/// Environment variable names (`names::is_valid_env_name`).
pub const ENV_NAME_PATTERN: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";
/// Strings that must hold no control character (Unicode `Cc`, as `char::is_control`).
const NO_CONTROL_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*$";
/// Text with something besides whitespace (as Rust's `char::is_whitespace` counts it) and no
/// NUL: a script's content.
const NOT_BLANK_PATTERN: &str = "^[^\\u0000]*[^\\u0000\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$";
/// Strings that must hold no NUL (argv, env and Postgres refuse it).
const NO_NUL_PATTERN: &str = r"^[^\u0000]*$";

fn name() -> Value {
    json!({"pattern": NAME_PATTERN, "minLength": 1, "maxLength": MAX_SCRIPT_NAME})
}

/// A resource limit: a u64 of at least `min`.
fn limit(min: u64) -> Value {
    json!({"minimum": min, "maximum": u64::MAX})
}

fn parameters() -> Value {
    json!({"propertyNames": {"pattern": PARAMETER_KEY_PATTERN, "maxLength": MAX_PARAMETER_KEY}})
}

/// Settings shared by every body that describes a run (`POST /runs`, `/runs/runs`, tasks).
fn run_settings(policy: &SubmitPolicy) -> Vec<(&'static str, Value)> {
    let mut queues: Vec<Value> = policy.queues.iter().map(|q| json!(q)).collect();
    queues.push(Value::Null);
    vec![
        ("parameters", parameters()),
        (
            "queue",
            json!({"enum": queues, "maxLength": MAX_QUEUE_NAME}),
        ),
        (
            "timeout_seconds",
            json!({"minimum": 1, "maximum": policy.max_timeout_seconds}),
        ),
        (
            "max_attempts",
            json!({"minimum": 1, "maximum": MAX_ATTEMPTS}),
        ),
        (
            "retry_backoff_seconds",
            json!({"minimum": 0, "maximum": 86_400}),
        ),
        (
            "retry_backoff_max_seconds",
            json!({"minimum": 0, "maximum": 86_400}),
        ),
    ]
}

/// Lays what the handlers check over the generated schemas, field by field.
pub(super) fn constrain(doc: &mut Value, policy: &SubmitPolicy) {
    let idempotency_key = json!({
        "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY, "pattern": NO_CONTROL_PATTERN
    });
    let mut create_run = run_settings(policy);
    create_run.extend([
        ("script", name()),
        ("task", name()),
        ("version", json!({"minimum": 1})),
        ("idempotency_key", idempotency_key.clone()),
    ]);
    let mut hub_run = run_settings(policy);
    hub_run.extend([
        ("script_name", name()),
        ("idempotency_key", idempotency_key),
    ]);
    let env_name = json!({
        "allOf": [
            {"pattern": ENV_NAME_PATTERN, "maxLength": 128},
            {"not": {"pattern": "^[Rr][Uu][Nn][Ff][Ll][Ee][Ee][Tt]_"}}
        ]
    });
    let mut task = run_settings(policy);
    task.extend([
        ("name", name()),
        ("script", name()),
        ("version", json!({"minimum": 1})),
        (
            "env",
            json!({
                "propertyNames": env_name.clone(),
                "additionalProperties": {"type": "string", "pattern": NO_NUL_PATTERN}
            }),
        ),
        (
            "secrets",
            json!({
                "propertyNames": env_name,
                "additionalProperties": {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_SCRIPT_NAME}
            }),
        ),
    ]);
    let table: Vec<(&str, Vec<(&str, Value)>)> = vec![
        ("CreateRun", create_run),
        ("HubRun", hub_run),
        ("TaskBody", task),
        (
            "CreateBatch",
            vec![("runs", json!({"minItems": 1, "maxItems": MAX_BATCH}))],
        ),
        (
            "CreateScript",
            vec![
                ("name", name()),
                ("content", json!({"pattern": NOT_BLANK_PATTERN})),
                ("language", json!({"enum": ["python", "shell", null]})),
                (
                    "requirements",
                    json!({"maxItems": MAX_REQUIREMENTS, "items": {
                        "minLength": 1, "maxLength": MAX_REQUIREMENT_LEN, "pattern": r"^[^\n\r\u0000]*\S[^\n\r\u0000]*$"
                    }}),
                ),
            ],
        ),
        (
            "ScheduleBody",
            vec![
                ("task", name()),
                ("cron", cron()),
                ("timezone", timezone()),
                (
                    "catchup_limit",
                    json!({"minimum": 1, "maximum": MAX_CATCHUP_LIMIT}),
                ),
                ("parameters", parameters()),
                ("start_at", json!({"examples": ["2026-01-01T00:00:00Z"]})),
                ("end_at", json!({"examples": ["2027-01-01T00:00:00Z"]})),
            ],
        ),
        (
            "PutSecret",
            vec![
                ("name", name()),
                ("value", json!({"minLength": 1, "pattern": NO_NUL_PATTERN})),
            ],
        ),
        (
            "CreateToken",
            vec![(
                "name",
                json!({"allOf": [name(), {"not": {"enum": ["bootstrap", "anonymous"]}}]}),
            )],
        ),
        (
            "RunLimits",
            vec![
                ("cpu_seconds", limit(1)),
                (
                    "memory_bytes",
                    limit(runfleet_common::limits::MIN_MEMORY_BYTES),
                ),
                ("open_files", limit(runfleet_common::limits::MIN_OPEN_FILES)),
                ("processes", limit(1)),
            ],
        ),
    ];
    let schemas = &mut doc["components"]["schemas"];
    for (schema, fields) in table {
        for (field, rules) in fields {
            let property = &mut schemas[schema]["properties"][field];
            assert!(
                property.is_object(),
                "{schema}.{field} is not in the document"
            );
            merge(property, rules);
        }
    }
    // Without a language, the name's extension says it.
    schemas["CreateScript"]["anyOf"] = json!([
        {"required": ["language"], "properties": {"language": {"type": "string"}}},
        {"properties": {"name": {"pattern": r"\.(py|sh)$"}}}
    ]);
    // A run names its script or its task, never both; with a task the task pins the version.
    schemas["CreateRun"]["oneOf"] = json!([
        {"required": ["script"], "properties": {"script": {"type": "string"}, "task": {"type": "null"}}},
        {"required": ["task"], "properties": {"task": {"type": "string"}, "script": {"type": "null"}, "version": {"type": "null"}}}
    ]);

    // An empty value filters nothing, like an absent one.
    let mut status: Vec<Value> = runfleet_common::run_state::RunStatus::ALL
        .iter()
        .map(|s| json!(s.as_str()))
        .collect();
    status.push(json!(""));
    let count = number_or_empty(1, Some(MAX_PREVIEW as i64));
    let queries: Vec<(&str, &str, &str, Value, bool)> = vec![
        (
            "/runs",
            "get",
            "status",
            json!({"type": "string", "enum": status}),
            false,
        ),
        (
            "/runs",
            "get",
            "limit",
            number_or_empty(1, Some(500)),
            false,
        ),
        (
            "/runs/{id}/logs",
            "get",
            "attempt",
            number_or_empty(1, None),
            false,
        ),
        ("/schedules/{id}/next", "get", "count", count.clone(), false),
        (
            "/schedules/preview",
            "get",
            "cron",
            merged(json!({"type": "string"}), cron()),
            true,
        ),
        (
            "/schedules/preview",
            "get",
            "timezone",
            merged(json!({"type": "string"}), timezone()),
            false,
        ),
        ("/schedules/preview", "get", "count", count, false),
        (
            "/schedules/preview",
            "get",
            "after",
            json!({"type": "string", "format": "date-time"}),
            false,
        ),
        (
            "/audit",
            "get",
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            false,
        ),
    ];
    for (path, method, param, schema, required) in queries {
        let params = doc["paths"][path][method]["parameters"]
            .as_array_mut()
            .unwrap_or_else(|| panic!("{method} {path} has no parameters"));
        let p = params
            .iter_mut()
            .find(|p| p["name"] == param && p["in"] == "query")
            .unwrap_or_else(|| panic!("{method} {path} has no query parameter {param}"));
        p["schema"] = schema;
        p["required"] = json!(required);
    }
}

/// `POST /tasks` needs a name (`NewTask`); `PUT /tasks/{name}` takes it from the URL
/// (`TaskSettings`, the same body without `name`). One Rust type reads both, so the two
/// documented bodies are cut from its schema here.
pub(super) fn split_task_body(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    let mut new_task = schemas["TaskBody"].clone();
    new_task["description"] = json!("A task to create: its name and settings.");
    new_task["properties"]["name"]["type"] = json!("string");
    new_task["properties"]["name"]["description"] = json!("Name of the new task.");
    let mut required = new_task["required"].as_array().cloned().unwrap_or_default();
    required.push(json!("name"));
    new_task["required"] = json!(required);
    let mut settings = schemas["TaskBody"].clone();
    settings["properties"]
        .as_object_mut()
        .expect("TaskBody has properties")
        .remove("name");
    settings["description"] = json!("A task's settings; absent fields go back to their defaults.");
    let schemas = schemas.as_object_mut().expect("schemas is an object");
    schemas.remove("TaskBody");
    schemas.insert("NewTask".into(), new_task);
    schemas.insert("TaskSettings".into(), settings);
    for (path, method, schema) in [
        ("/tasks", "post", "NewTask"),
        ("/tasks/{name}", "put", "TaskSettings"),
    ] {
        doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"] =
            json!({"$ref": format!("#/components/schemas/{schema}")});
    }
}

/// A query number these handlers read themselves: an empty value means "the default".
fn number_or_empty(min: i64, max: Option<i64>) -> Value {
    let mut number = json!({"type": "integer", "minimum": min});
    if let Some(max) = max {
        number["maximum"] = json!(max);
    }
    json!({"anyOf": [number, {"type": "string", "maxLength": 0}]})
}

/// A cron expression (`cron` is this API's own format: 5 fields, or 6 with seconds first,
/// as `cron::parse` reads them; no pattern can say which values each field takes).
fn cron() -> Value {
    json!({"format": "cron", "minLength": 1, "pattern": r"\S", "examples": ["0 3 * * *"]})
}

/// An IANA timezone name (`timezone` format: a name `chrono-tz` knows, e.g. `Europe/Paris`).
fn timezone() -> Value {
    json!({"format": "timezone", "minLength": 1, "examples": ["Europe/Paris"]})
}

fn merged(mut base: Value, rules: Value) -> Value {
    merge(&mut base, rules);
    base
}

fn merge(target: &mut Value, rules: Value) {
    if let (Some(t), Value::Object(r)) = (target.as_object_mut(), rules) {
        t.extend(r);
    }
}
