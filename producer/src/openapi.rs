//! The OpenAPI document (`/openapi.json`): generated from the handlers' annotations, then
//! made exact where a derive cannot say what the handlers enforce (name patterns, ranges,
//! the configured queues, "script or task"), given one id per operation and linked from
//! each created resource to the operations that take its id, so a generated client or a
//! stateful fuzzer can follow them.

use runfleet_common::names::{MAX_PARAMETER_KEY, MAX_QUEUE_NAME, MAX_SCRIPT_NAME};
use runfleet_common::runs::{MAX_ATTEMPTS, MAX_BATCH, MAX_IDEMPOTENCY_KEY, SubmitPolicy};
use runfleet_common::schedules::{MAX_CATCHUP_LIMIT, MAX_PREVIEW};
use runfleet_common::scripts::{MAX_REQUIREMENT_LEN, MAX_REQUIREMENTS};
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::routes;

/// runfleet's HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "runfleet API",
        description = "Submit and inspect script runs on a runfleet worker fleet."
    ),
    paths(
        routes::health::health,
        routes::health::ready,
        routes::health::meta,
        routes::fleet::view,
        routes::fleet::whoami,
        routes::scripts::create,
        routes::scripts::list,
        routes::scripts::detail,
        routes::scripts::version,
        routes::runs::create,
        routes::runs::create_batch,
        routes::runs::list,
        routes::runs::get,
        routes::runs::logs,
        routes::events::follow,
        routes::runs::cancel,
        routes::runs::attempts,
        routes::runs::retry,
        routes::tasks::create,
        routes::tasks::list,
        routes::tasks::get,
        routes::tasks::replace,
        routes::tasks::delete,
        routes::schedules::create,
        routes::schedules::list,
        routes::schedules::get,
        routes::schedules::replace,
        routes::schedules::delete,
        routes::schedules::pause,
        routes::schedules::resume,
        routes::schedules::trigger,
        routes::schedules::next,
        routes::schedules::preview,
        routes::compat::create,
        routes::compat::get,
        routes::tokens::create,
        routes::tokens::list,
        routes::tokens::revoke,
        routes::tokens::audit_log,
        routes::secrets::put,
        routes::secrets::list,
        routes::secrets::delete,
    ),
    components(schemas(crate::api_error::ErrorBody, crate::api_error::ErrorDetail)),
    modifiers(&BearerAuth, &CommonErrors),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme every route but the probes uses.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Routes that need no token (they answer probes and scrapers).
const OPEN_PATHS: &[&str] = &["/health", "/ready"];

/// Documents the answers every operation can give besides its own: 400 (malformed query,
/// path or JSON), 401 and 403 (token), 413 and 415 (body too large, not JSON) on
/// operations with a body, and 503 (Postgres unreachable).
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::content::ContentBuilder;
        use utoipa::openapi::response::ResponseBuilder;
        use utoipa::openapi::security::SecurityRequirement;
        use utoipa::openapi::{Ref, RefOr};

        let error = |description: &str| -> RefOr<utoipa::openapi::Response> {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let open = OPEN_PATHS.contains(&path.as_str());
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let mut common = vec![
                    ("400", "malformed request: query, path id or JSON body"),
                    ("503", "Postgres or RabbitMQ unreachable; try again"),
                ];
                if open {
                    operation.security = Some(vec![SecurityRequirement::default()]);
                } else {
                    common.push(("401", "no token, or an unknown or revoked one"));
                    common.push(("403", "the token's role is too low"));
                }
                if operation.request_body.is_some() {
                    common.push(("413", "body larger than producer.max_body_bytes"));
                    common.push(("415", "body is not application/json"));
                }
                let responses = &mut operation.responses.responses;
                for (status, description) in common {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description));
                }
            }
        }
    }
}

/// The document `/openapi.json` serves under `policy` (its queues and timeout ceiling).
pub fn document(policy: &SubmitPolicy) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document is JSON");
    name_operations(&mut doc);
    constrain(&mut doc, policy);
    split_task_body(&mut doc);
    link_created_resources(&mut doc);
    doc
}

/// Gives every operation the id `<method>_<path>` (`post_runs_by_id_cancel`): utoipa takes
/// the handler's function name, and six handlers are called `create`.
fn name_operations(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            operation["operationId"] = Value::String(operation_id(method, path));
        }
    }
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(param) => {
                id.push_str("by_");
                id.push_str(param);
            }
            None => id.push_str(&segment.replace('-', "_")),
        }
    }
    id
}

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
fn constrain(doc: &mut Value, policy: &SubmitPolicy) {
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
fn split_task_body(doc: &mut Value) {
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

/// A create operation's links: its path and method, the answers that carry a new resource,
/// the operations that take it, and where in the answer each of their parameters is.
type CreateLinks<'a> = (
    &'a str,
    &'a str,
    &'a [&'a str],
    &'a [&'a str],
    Vec<(&'a str, &'a str)>,
);

/// Links each created resource to the operations that take its id (OpenAPI links: what a
/// client, or schemathesis' stateful phase, follows from a create to its reads and changes).
fn link_created_resources(doc: &mut Value) {
    let runs = [
        "get_runs_by_id",
        "get_runs_by_id_logs",
        "get_runs_by_id_attempts",
        "post_runs_by_id_cancel",
        "post_runs_by_id_retry",
        "get_runs_runs_by_id",
    ];
    let schedules = [
        "get_schedules_by_id",
        "put_schedules_by_id",
        "delete_schedules_by_id",
        "get_schedules_by_id_next",
        "post_schedules_by_id_pause",
        "post_schedules_by_id_resume",
        "post_schedules_by_id_trigger",
    ];
    let table: Vec<CreateLinks> = vec![
        (
            "/runs",
            "post",
            &["202", "200"],
            &runs,
            vec![("id", "$response.body#/id")],
        ),
        (
            "/runs/runs",
            "post",
            &["202", "200"],
            &runs,
            vec![("id", "$response.body#/id")],
        ),
        (
            "/runs/batch",
            "post",
            &["202"],
            &runs,
            vec![("id", "$response.body#/ids/0")],
        ),
        (
            "/scripts",
            "post",
            &["201", "200"],
            &["get_scripts_by_name"],
            vec![("name", "$response.body#/name")],
        ),
        (
            "/scripts",
            "post",
            &["201", "200"],
            &["get_scripts_by_name_versions_by_version"],
            vec![
                ("name", "$response.body#/name"),
                ("version", "$response.body#/version"),
            ],
        ),
        (
            "/tasks",
            "post",
            &["201"],
            &[
                "get_tasks_by_name",
                "put_tasks_by_name",
                "delete_tasks_by_name",
            ],
            vec![("name", "$response.body#/name")],
        ),
        (
            "/schedules",
            "post",
            &["201"],
            &schedules,
            vec![("id", "$response.body#/id")],
        ),
        (
            "/secrets",
            "post",
            &["200"],
            &["delete_secrets_by_name"],
            vec![("name", "$response.body#/name")],
        ),
        (
            "/tokens",
            "post",
            &["201"],
            &["delete_tokens_by_id"],
            vec![("id", "$response.body#/id")],
        ),
    ];
    for (path, method, statuses, targets, parameters) in table {
        let parameters: serde_json::Map<String, Value> = parameters
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        for status in statuses {
            let response = &mut doc["paths"][path][method]["responses"][*status];
            assert!(
                response.is_object(),
                "{method} {path} has no {status} answer"
            );
            for target in targets {
                response["links"][*target] =
                    json!({"operationId": target, "parameters": parameters});
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runfleet_common::names::{is_valid_env_name, is_valid_parameter_key, is_valid_script_name};

    fn policy() -> SubmitPolicy {
        SubmitPolicy {
            queues: vec!["default".into(), "etl".into()],
            default_queue: "default".into(),
            default_timeout_seconds: 60,
            max_timeout_seconds: 3600,
            max_parameters_bytes: 1024,
            default_retry: runfleet_common::runs::RetryPolicy::default(),
        }
    }

    /// The patterns say what the validators say, on strings chosen to sit at each edge.
    #[test]
    fn patterns_match_the_validators() {
        let name = regex::Regex::new(NAME_PATTERN).unwrap();
        let key = regex::Regex::new(PARAMETER_KEY_PATTERN).unwrap();
        let env = regex::Regex::new(ENV_NAME_PATTERN).unwrap();
        let samples = [
            "",
            "a",
            "A9",
            "9lives",
            "fetch_rss.py",
            "a.",
            "a..b",
            "a...",
            ".a",
            "-a",
            "_a",
            "a-b_c.d",
            "a.-b",
            "a._",
            "a b",
            "é",
            "a/b",
            "x;rm",
            "a.b.c.d",
            "ab..",
            "1st",
            "out-dir",
            "a=b",
            "_private",
            "A_B",
            "a-",
        ];
        for s in samples {
            // Lengths are checked by maxLength beside the pattern.
            assert_eq!(name.is_match(s), is_valid_script_name(s), "name {s:?}");
            assert_eq!(
                key.is_match(s),
                is_valid_parameter_key(s),
                "parameter key {s:?}"
            );
            assert_eq!(env.is_match(s), is_valid_env_name(s), "env name {s:?}");
        }
    }

    #[test]
    fn every_operation_has_its_own_id_and_every_link_a_target() {
        let doc = document(&policy());
        let mut ids = std::collections::BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap().to_string();
                assert!(ids.insert(id.clone()), "operationId {id} twice");
            }
        }
        let mut links = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for response in op["responses"].as_object().unwrap().values() {
                    for link in response["links"]
                        .as_object()
                        .into_iter()
                        .flat_map(|l| l.values())
                    {
                        links += 1;
                        let target = link["operationId"].as_str().unwrap();
                        assert!(ids.contains(target), "link to unknown operation {target}");
                    }
                }
            }
        }
        assert!(links >= 30, "{links} links");
    }

    #[test]
    fn the_configured_queues_and_timeout_ceiling_are_in_the_document() {
        let doc = document(&policy());
        let run = &doc["components"]["schemas"]["CreateRun"]["properties"];
        assert_eq!(run["queue"]["enum"], json!(["default", "etl", null]));
        assert_eq!(run["timeout_seconds"]["maximum"], json!(3600));
        assert_eq!(run["max_attempts"]["maximum"], json!(MAX_ATTEMPTS));
    }

    /// `POST /tasks` refuses a body without a name, and `PUT /tasks/{name}` one naming
    /// another task: the documented bodies say so.
    #[test]
    fn creating_a_task_needs_a_name_and_replacing_one_takes_it_from_the_url() {
        let doc = document(&policy());
        let body = |path: &str, method: &str| {
            let reference =
                doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
                    ["$ref"]
                    .as_str()
                    .unwrap()
                    .to_string();
            let name = reference.rsplit('/').next().unwrap().to_string();
            doc["components"]["schemas"][name].clone()
        };
        let create = body("/tasks", "post");
        assert!(
            create["required"]
                .as_array()
                .unwrap()
                .contains(&json!("name"))
        );
        assert_eq!(create["properties"]["name"]["type"], json!("string"));
        let replace = body("/tasks/{name}", "put");
        assert!(replace["properties"]["name"].is_null(), "{replace}");
        assert!(replace["properties"]["script"].is_object());
        assert_eq!(replace["additionalProperties"], json!(false));
        assert!(doc["components"]["schemas"]["TaskBody"].is_null());
    }
}
