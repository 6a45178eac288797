//! OpenAPI links from each created resource to the operations that take its id.

use serde_json::{Value, json};

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
pub(super) fn link_created_resources(doc: &mut Value) {
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
