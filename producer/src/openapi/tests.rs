use super::*;
use runfleet_common::names::{is_valid_env_name, is_valid_parameter_key, is_valid_script_name};
use runfleet_common::runs::MAX_ATTEMPTS;
use serde_json::json;

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

/// The document and the route table hold the same operations: a route registered but not
/// documented (or documented but not registered) fails here. Only the scrape endpoint and
/// the console's files are left out of the document on purpose.
#[test]
fn every_route_in_the_table_is_documented_and_nothing_else() {
    let undocumented = ["/metrics", "/ui", "/ui/", "/ui/{file}"];
    let mut in_table: Vec<String> = crate::routes::table::all()
        .into_iter()
        .filter(|r| !undocumented.contains(&r.path))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let doc = document(&policy());
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    in_table.sort();
    documented.sort();
    assert_eq!(in_table, documented);
}

/// The open routes are documented as needing no token, and the others as needing one.
#[test]
fn the_document_marks_open_routes_from_the_table() {
    let doc = document(&policy());
    let health = &doc["paths"]["/health"]["get"];
    assert_eq!(health["security"], json!([{}]), "{health}");
    assert!(health["responses"].get("401").is_none());
    let runs = &doc["paths"]["/runs"]["post"];
    assert!(runs.get("security").is_none(), "{runs}");
    assert!(runs["responses"].get("401").is_some());
}
