//! Who may do what: every API operation against no token, a bad token, and each role; the
//! audit log of changes; revocation; tokens kept only as hashes.

use std::collections::BTreeSet;

use runfleet_tests::{Fleet, FleetOptions};
use serde_json::{Value, json};

/// `(method, path, body, role needed)`; `None` = open to anyone.
type Case = (&'static str, String, Option<Value>, Option<&'static str>);

async fn call(
    fleet: &Fleet,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &Option<Value>,
) -> (u16, Value) {
    // A client without the fleet's default admin header.
    let client = reqwest::Client::new();
    let mut request = client.request(method.parse().unwrap(), format!("{}{path}", fleet.base));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(b) = body {
        request = request.json(b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn make_token(fleet: &Fleet, name: &str, role: &str) -> (String, String) {
    let (status, created) = fleet
        .post("/tokens", &json!({"name": name, "role": role}))
        .await;
    assert_eq!(status, 201, "{created}");
    (
        created["token"].as_str().unwrap().to_string(),
        created["id"].as_str().unwrap().to_string(),
    )
}

const RANK: [&str; 3] = ["viewer", "operator", "admin"];

fn rank(role: &str) -> usize {
    RANK.iter().position(|r| *r == role).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_needs_its_role_and_changes_are_audited() {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    let mut tokens = Vec::new();
    for role in RANK {
        tokens.push((role, make_token(&fleet, &format!("t-{role}"), role).await));
    }
    fleet.register("s.py", "print('hi')\n").await;
    let (status, _) = fleet
        .post("/tasks", &json!({"name": "t", "script": "s.py"}))
        .await;
    assert_eq!(status, 201);
    let (status, schedule) = fleet
        .post(
            "/schedules",
            &json!({"task": "t", "cron": "0 3 * * *", "paused": true}),
        )
        .await;
    assert_eq!(status, 201, "{schedule}");
    let sid = schedule["id"].as_str().unwrap().to_string();
    let run = fleet.submit(json!({"script": "s.py"})).await;
    let (_, spare) = make_token(&fleet, "spare", "viewer").await;
    // A finished run, so its event stream ends at once.
    let ended = fleet.submit(json!({"script": "s.py"})).await;
    let (status, _) = fleet
        .post(&format!("/runs/{ended}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200);

    let task = json!({"script": "s.py"});
    let sched = json!({"task": "t", "cron": "0 4 * * *", "paused": true});
    let cases: Vec<Case> = vec![
        ("GET", "/health".into(), None, None),
        ("GET", "/ready".into(), None, None),
        ("GET", "/metrics".into(), None, None),
        ("GET", "/openapi.json".into(), None, None),
        ("GET", "/meta".into(), None, None),
        ("GET", "/scripts".into(), None, Some("viewer")),
        ("GET", "/scripts/s.py".into(), None, Some("viewer")),
        (
            "GET",
            "/scripts/s.py/versions/1".into(),
            None,
            Some("viewer"),
        ),
        ("GET", "/runs".into(), None, Some("viewer")),
        ("GET", format!("/runs/{run}"), None, Some("viewer")),
        ("GET", format!("/runs/{run}/logs"), None, Some("viewer")),
        ("GET", format!("/runs/{run}/attempts"), None, Some("viewer")),
        ("GET", "/runs/runs".into(), None, Some("viewer")),
        ("GET", format!("/runs/runs/{run}"), None, Some("viewer")),
        ("GET", format!("/runs/{ended}/events"), None, Some("viewer")),
        ("GET", "/fleet".into(), None, Some("viewer")),
        ("GET", "/whoami".into(), None, Some("viewer")),
        ("GET", "/tasks".into(), None, Some("viewer")),
        ("GET", "/tasks/t".into(), None, Some("viewer")),
        ("GET", "/schedules".into(), None, Some("viewer")),
        ("GET", format!("/schedules/{sid}"), None, Some("viewer")),
        (
            "GET",
            format!("/schedules/{sid}/next"),
            None,
            Some("viewer"),
        ),
        (
            "GET",
            "/schedules/preview?cron=0+3+*+*+*".into(),
            None,
            Some("viewer"),
        ),
        (
            "POST",
            "/runs".into(),
            Some(json!({"script": "s.py"})),
            Some("operator"),
        ),
        (
            "POST",
            "/runs/runs".into(),
            Some(json!({"script_name": "s.py"})),
            Some("operator"),
        ),
        (
            "POST",
            "/runs/batch".into(),
            Some(json!({"runs": [{"script": "s.py"}]})),
            Some("operator"),
        ),
        (
            "POST",
            format!("/runs/{run}/cancel"),
            None,
            Some("operator"),
        ),
        ("POST", format!("/runs/{run}/retry"), None, Some("operator")),
        (
            "POST",
            format!("/schedules/{sid}/trigger"),
            None,
            Some("operator"),
        ),
        (
            "POST",
            "/scripts".into(),
            Some(json!({"name": "s2.py", "content": "print(2)\n"})),
            Some("admin"),
        ),
        (
            "POST",
            "/tasks".into(),
            Some(json!({"name": "t2", "script": "s.py"})),
            Some("admin"),
        ),
        ("PUT", "/tasks/t".into(), Some(task), Some("admin")),
        (
            "POST",
            "/schedules".into(),
            Some(sched.clone()),
            Some("admin"),
        ),
        (
            "PUT",
            format!("/schedules/{sid}"),
            Some(sched),
            Some("admin"),
        ),
        (
            "POST",
            format!("/schedules/{sid}/pause"),
            None,
            Some("admin"),
        ),
        (
            "POST",
            format!("/schedules/{sid}/resume"),
            None,
            Some("admin"),
        ),
        ("GET", "/tokens".into(), None, Some("admin")),
        (
            "POST",
            "/tokens".into(),
            Some(json!({"name": "from-test", "role": "viewer"})),
            Some("admin"),
        ),
        ("GET", "/audit".into(), None, Some("admin")),
        ("GET", "/secrets".into(), None, Some("admin")),
        (
            "POST",
            "/secrets".into(),
            Some(json!({"name": "k", "value": "v"})),
            Some("admin"),
        ),
        ("DELETE", "/secrets/k".into(), None, Some("admin")),
        ("DELETE", format!("/tokens/{spare}"), None, Some("admin")),
        ("DELETE", format!("/schedules/{sid}"), None, Some("admin")),
        ("DELETE", "/tasks/t2".into(), None, Some("admin")),
    ];

    // The table covers every operation the API documents.
    let (_, doc) = call(&fleet, None, "GET", "/openapi.json", &None).await;
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let template = |path: &str| {
        path.split('?')
            .next()
            .unwrap()
            .replace(&run, "{id}")
            .replace(&ended, "{id}")
            .replace(&sid, "{id}")
            .replace(&spare, "{id}")
            .replace("/s.py/versions/1", "/{name}/versions/{version}")
            .replace("/scripts/s.py", "/scripts/{name}")
            .replace("/tasks/t2", "/tasks/{name}")
            .replace("/secrets/k", "/secrets/{name}")
            .replace("/tasks/t", "/tasks/{name}")
    };
    let covered: BTreeSet<String> = cases
        .iter()
        .map(|(m, p, _, _)| format!("{m} {}", template(p)))
        .collect();
    let missing: Vec<_> = documented.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "operations without a role case: {missing:?}"
    );

    for (method, path, body, needs) in &cases {
        let (anonymous, answer) = call(&fleet, None, method, path, body).await;
        let (bad, _) = call(&fleet, Some("rft_not-a-real-token"), method, path, body).await;
        match needs {
            None => {
                assert_eq!(anonymous, 200, "{method} {path} is open: {answer}");
                continue;
            }
            Some(_) => {
                assert_eq!(anonymous, 401, "{method} {path} without a token: {answer}");
                assert_eq!(answer["error"]["code"], "unauthorized");
                assert_eq!(bad, 401, "{method} {path} with an unknown token");
            }
        }
        let needed = rank(needs.unwrap());
        for (role, (token, _)) in &tokens {
            let (status, answer) = call(&fleet, Some(token), method, path, body).await;
            if rank(role) < needed {
                assert_eq!(status, 403, "{method} {path} as {role}: {answer}");
                assert_eq!(answer["error"]["code"], "forbidden");
                assert!(
                    answer["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains(needs.unwrap())
                );
            } else {
                assert!(
                    status != 401 && status != 403 && status < 500,
                    "{method} {path} as {role}: {status} {answer}"
                );
            }
        }
    }

    // The audit log names who did what; a viewer cannot read it.
    let (status, audit) = fleet.get("/audit?limit=1000").await;
    assert_eq!(status, 200);
    let entries = audit.as_array().unwrap();
    let by = |actor: &str, action: &str| {
        entries
            .iter()
            .filter(|e| e["actor"] == actor && e["action"] == action)
            .count()
    };
    assert_eq!(by("t-operator", "POST /runs"), 1, "{audit}");
    assert_eq!(by("t-admin", "POST /runs"), 1);
    assert_eq!(
        by("t-viewer", "POST /runs"),
        0,
        "a refused call is not a change"
    );
    assert_eq!(by("bootstrap", "POST /tokens"), 4);
    assert_eq!(by("t-admin", "DELETE /tasks/{name}"), 1);
    let created_run = entries
        .iter()
        .find(|e| e["actor"] == "t-operator" && e["action"] == "POST /runs")
        .unwrap();
    let target = created_run["target"].as_str().unwrap();
    assert!(
        target.starts_with("/runs/") && target.len() > "/runs/".len(),
        "{created_run}"
    );
    assert!(
        entries.iter().all(|e| e["action"] != "GET /runs"),
        "reads are not audited"
    );

    // Revoked: refused at once. Only hashes are stored.
    let (viewer_token, viewer_id) = &tokens[0].1;
    let (status, _) = fleet.delete(&format!("/tokens/{viewer_id}")).await;
    assert_eq!(status, 200);
    let (status, _) = call(&fleet, Some(viewer_token), "GET", "/runs", &None).await;
    assert_eq!(status, 401);
    let db = fleet.db().await;
    let stored: Vec<String> = db
        .query("SELECT row_to_json(t)::text FROM api_tokens t", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (_, (token, _)) in &tokens {
        assert!(
            stored.iter().all(|row| !row.contains(token.as_str())),
            "a token is stored in plain text"
        );
    }
    let (status, listed) = fleet.get("/tokens").await;
    assert_eq!(status, 200);
    assert!(
        !listed.to_string().contains("rft_"),
        "GET /tokens shows a token: {listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_disabled_anyone_is_an_audited_anonymous_admin() {
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        auth_disabled: true,
        ..FleetOptions::default()
    })
    .await;
    let (status, _) = call(
        &fleet,
        None,
        "POST",
        "/scripts",
        &Some(json!({"name": "a.py", "content": "print(1)\n"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, audit) = call(&fleet, None, "GET", "/audit", &None).await;
    assert_eq!(audit[0]["actor"], "anonymous", "{audit}");
    assert_eq!(audit[0]["action"], "POST /scripts");
    assert_eq!(audit[0]["target"], "/scripts/a.py/versions/1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_record_postgres_could_not_take_is_written_once_it_is_back() {
    use runfleet_common::access::{Caller, Role};
    use runfleet_common::audit::{Change, record_or_retry};
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        producer_db_via_proxy: true,
        ..FleetOptions::default()
    })
    .await;
    let proxy = fleet.db_proxy.as_ref().unwrap();
    let db_name = fleet.db_url.rsplit('/').next().unwrap();
    let pool = runfleet_common::db::pool(&runfleet_common::config::DatabaseConfig {
        url: format!("postgres://postgres@{}/{db_name}", proxy.addr),
        pool_size: 2,
        connect_timeout_seconds: 1,
    });
    let at = chrono::Utc::now() - chrono::Duration::seconds(30);
    proxy.down();
    record_or_retry(
        &pool,
        Change {
            caller: Caller {
                name: "outage-test".into(),
                role: Role::Operator,
            },
            action: "POST /runs".into(),
            target: "/runs/during-outage".into(),
            status: 202,
            trace_id: None,
            at,
        },
    )
    .await;
    let db = fleet.db().await;
    async fn count(db: &tokio_postgres::Client) -> i64 {
        db.query_one(
            "SELECT count(*) FROM audit_log WHERE target = '/runs/during-outage'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    }
    assert_eq!(count(&db).await, 0, "Postgres was unreachable");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    proxy.up();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count(&db).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the record never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(count(&db).await, 1, "written once");
    let row = db
        .query_one(
            "SELECT at, actor FROM audit_log WHERE target = '/runs/during-outage'",
            &[],
        )
        .await
        .unwrap();
    let stored: chrono::DateTime<chrono::Utc> = row.get(0);
    assert!(
        (stored - at).num_milliseconds().abs() < 5,
        "the answer's time is kept"
    );
    assert_eq!(row.get::<_, &str>(1), "outage-test");
}
