//! Tasks and the cron scheduler against real Postgres and RabbitMQ: runs from tasks,
//! validation, previews, two schedulers firing a per-second schedule exactly once per
//! second, catch-up on and off, pause/resume, edits taking effect at once, overlap skip.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use runfleet_tests::{Fleet, FleetOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

async fn fleet_without_consumer() -> Fleet {
    Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await
}

async fn create_task(fleet: &Fleet, name: &str) {
    fleet.register("ok.sh", "exit 0\n").await;
    let (s, body) = fleet
        .post("/tasks", &json!({"name": name, "script": "ok.sh"}))
        .await;
    assert_eq!(s, 201, "{body}");
}

async fn create_schedule(fleet: &Fleet, body: Value) -> String {
    let (s, schedule) = fleet.post("/schedules", &body).await;
    assert_eq!(s, 201, "{schedule}");
    schedule["id"].as_str().unwrap().to_string()
}

/// (scheduled_for, triggered_by) of every run of `schedule`, oldest first.
async fn fired_runs(fleet: &Fleet, schedule: &str) -> Vec<(DateTime<Utc>, String)> {
    let id: uuid::Uuid = schedule.parse().unwrap();
    fleet
        .db()
        .await
        .query(
            "SELECT scheduled_for, triggered_by FROM runs WHERE schedule_id = $1 ORDER BY scheduled_for",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn wait_for_runs(fleet: &Fleet, schedule: &str, n: usize) -> Vec<(DateTime<Utc>, String)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let runs = fired_runs(fleet, schedule).await;
        if runs.len() >= n {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} runs fired",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_with_its_defaults_overridden_by_the_request() {
    let fleet = Fleet::start().await;
    fleet
        .register(
            "show.py",
            "import json, os, sys\njson.dump({'argv': sys.argv[1:], 'region': os.environ.get('REGION')}, open(os.environ['RUNFLEET_RESULT_PATH'], 'w'))\n",
        )
        .await;
    let (s, task) = fleet
        .post(
            "/tasks",
            &json!({"name": "report", "script": "show.py",
                    "parameters": {"day": "mon", "format": "csv"},
                    "max_attempts": 2, "env": {"REGION": "eu-west"}}),
        )
        .await;
    assert_eq!(s, 201, "{task}");
    assert_eq!(task["queue"], "default", "defaults are resolved on save");
    assert_eq!(task["max_attempts"], 2);

    let (s, run) = fleet
        .post(
            "/runs",
            &json!({"task": "report", "parameters": {"day": "tue"}}),
        )
        .await;
    assert_eq!(s, 202, "{run}");
    assert_eq!(run["task"], "report");
    assert_eq!(run["max_attempts"], 2);
    let run = fleet.wait_final(run["id"].as_str().unwrap(), WAIT).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let argv: Vec<&str> = run["result"]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(argv, ["--day", "tue", "--format", "csv"]);
    assert_eq!(
        run["result"]["region"], "eu-west",
        "task env reaches the script"
    );

    // CRUD and errors naming the field.
    let (s, body) = fleet
        .post("/tasks", &json!({"name": "report", "script": "show.py"}))
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("task_exists"))
    );
    for (body, field) in [
        (json!({"name": "x", "script": "nope.py"}), "script"),
        (json!({"name": "bad name!", "script": "show.py"}), "name"),
        (
            json!({"name": "x", "script": "show.py", "queue": "nowhere"}),
            "queue",
        ),
        (
            json!({"name": "x", "script": "show.py", "env": {"RUNFLEET_RUN_ID": "1"}}),
            "env.RUNFLEET_RUN_ID",
        ),
        (
            json!({"name": "x", "script": "show.py", "env": {"A": 1}}),
            "env.A",
        ),
        (
            json!({"name": "x", "script": "show.py", "max_attempts": 0}),
            "max_attempts",
        ),
        (
            json!({"name": "x", "script": "show.py", "surprise": 1}),
            "surprise",
        ),
    ] {
        let (s, err) = fleet.post("/tasks", &body).await;
        assert!(s == 422 || s == 400, "{body}: {s} {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }
    let (s, err) = fleet.post("/runs", &json!({"task": "missing"})).await;
    assert_eq!((s, err["error"]["field"].as_str()), (422, Some("task")));
    let (s, err) = fleet.post("/runs", &json!({"parameters": {}})).await;
    assert_eq!((s, err["error"]["field"].as_str()), (422, Some("script")));

    let (s, task) = fleet
        .put(
            "/tasks/report",
            &json!({"script": "show.py", "timeout_seconds": 60}),
        )
        .await;
    assert_eq!(
        (s, task["timeout_seconds"].as_i64()),
        (200, Some(60)),
        "{task}"
    );
    assert_eq!(task["parameters"], json!({}), "PUT replaces every setting");
    let (s, list) = fleet.get("/tasks").await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 1));
    let (s, _) = fleet.delete("/tasks/report").await;
    assert_eq!(s, 204);
    let (s, _) = fleet.get("/tasks/report").await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_validate_and_preview_fire_times() {
    let fleet = fleet_without_consumer().await;
    create_task(&fleet, "nightly").await;
    for (body, field) in [
        (json!({"task": "nightly", "cron": "61 * * * *"}), "cron"),
        (json!({"task": "nightly", "cron": "* * * *"}), "cron"),
        (
            json!({"task": "nightly", "cron": "5 2 * * *", "timezone": "Mars/Base"}),
            "timezone",
        ),
        (json!({"task": "nope", "cron": "5 2 * * *"}), "task"),
        (
            json!({"task": "nightly", "cron": "5 2 * * *", "overlap": "sometimes"}),
            "overlap",
        ),
        (
            json!({"task": "nightly", "cron": "5 2 * * *", "catchup_limit": 0}),
            "catchup_limit",
        ),
        (
            json!({"task": "nightly", "cron": "5 2 * * *",
                "start_at": "2027-01-02T00:00:00Z", "end_at": "2027-01-01T00:00:00Z"}),
            "end_at",
        ),
    ] {
        let (s, err) = fleet.post("/schedules", &body).await;
        assert!(s == 422 || s == 400, "{body}: {s} {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }

    let id = create_schedule(
        &fleet,
        json!({"task": "nightly", "cron": "5 2 * * *", "timezone": "Asia/Shanghai"}),
    )
    .await;
    let (s, next) = fleet.get(&format!("/schedules/{id}/next?count=3")).await;
    assert_eq!(s, 200, "{next}");
    let times = next["next"].as_array().unwrap();
    assert_eq!(times.len(), 3);
    for t in times {
        assert!(t.as_str().unwrap().ends_with("T02:05:00+08:00"), "{t}");
    }
    let (_, schedule) = fleet.get(&format!("/schedules/{id}")).await;
    assert_eq!(
        schedule["next_fire_at"]
            .as_str()
            .map(|t| t.parse::<DateTime<Utc>>().unwrap()),
        Some(times[0].as_str().unwrap().parse::<DateTime<Utc>>().unwrap())
    );

    // Preview across New York's spring-forward night: 02:30 does not exist on March 8.
    let (s, preview) = fleet
        .get("/schedules/preview?cron=30%202%20*%20*%20*&timezone=America/New_York&count=2&after=2026-03-07T12:00:00Z")
        .await;
    assert_eq!(s, 200, "{preview}");
    assert_eq!(
        preview["next"],
        json!(["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"])
    );
    let (s, err) = fleet.get("/schedules/preview?cron=bogus").await;
    assert_eq!((s, err["error"]["field"].as_str()), (422, Some("cron")));
    let (s, err) = fleet
        .get("/schedules/preview?cron=*%20*%20*%20*%20*&count=0")
        .await;
    assert_eq!((s, err["error"]["field"].as_str()), (400, Some("count")));

    // A task in use cannot be deleted; the schedule can.
    let (s, err) = fleet.delete("/tasks/nightly").await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (409, Some("task_in_use"))
    );
    let (s, _) = fleet.delete(&format!("/schedules/{id}")).await;
    assert_eq!(s, 204);
    let (s, _) = fleet.delete("/tasks/nightly").await;
    assert_eq!(s, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_fire_a_per_second_schedule_once_per_second_for_20_seconds() {
    let fleet = fleet_without_consumer().await;
    create_task(&fleet, "tick").await;
    let first = fleet.start_scheduler(5000).await;
    let second = fleet.start_scheduler(5000).await;
    // 20 fires: the whole seconds from start to end, both included.
    let start = DateTime::from_timestamp(Utc::now().timestamp() + 2, 0).unwrap();
    let end = start + chrono::Duration::seconds(19);
    let id = create_schedule(
        &fleet,
        json!({"task": "tick", "cron": "* * * * * *", "start_at": start, "end_at": end}),
    )
    .await;
    let runs = wait_for_runs(&fleet, &id, 20).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs_after = fired_runs(&fleet, &id).await;
    assert_eq!(runs_after.len(), 20, "exactly 20 fires");
    let distinct: HashSet<_> = runs.iter().map(|r| r.0).collect();
    assert_eq!(distinct.len(), 20, "no fire twice");
    for (i, (at, trigger)) in runs_after.iter().enumerate() {
        assert_eq!(*at, start + chrono::Duration::seconds(i as i64));
        assert_eq!(trigger, "schedule");
    }
    let (_, schedule) = fleet.get(&format!("/schedules/{id}")).await;
    assert_eq!(
        schedule["last_fired_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        end
    );
    assert!(
        schedule["next_fire_at"].is_null(),
        "no fire left after end_at"
    );

    // Both are up and report their fires; lag is recorded.
    let mut fired = 0.0;
    let metrics = fleet.metrics_text(&first.base).await;
    for line in metrics.lines() {
        if line.starts_with("runfleet_scheduler_fires_total{outcome=\"fired\"}") {
            fired = line.rsplit(' ').next().unwrap().parse().unwrap();
        }
    }
    // In-process schedulers share one registry: the counter is their sum.
    assert_eq!(fired, 20.0, "{metrics}");
    assert!(
        metrics.contains("runfleet_scheduler_fire_lag_seconds_count 20"),
        "{metrics}"
    );
    first.stop().await;
    second.stop().await;
}

/// Pretends the schedulers were down since `minutes` ago: the schedule's next fire is
/// put back to that many whole minutes before now.
async fn missed_minutes(fleet: &Fleet, schedule: &str, minutes: i32) {
    let id: uuid::Uuid = schedule.parse().unwrap();
    fleet
        .db()
        .await
        .execute(
            "UPDATE schedules SET next_fire_at = date_trunc('minute', now()) - make_interval(mins => $2)
              WHERE id = $1",
            &[&id, &minutes],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_downtime_catchup_runs_every_missed_fire_up_to_its_limit_or_only_the_latest() {
    let fleet = fleet_without_consumer().await;
    create_task(&fleet, "minutely").await;
    let latest_only =
        create_schedule(&fleet, json!({"task": "minutely", "cron": "* * * * *"})).await;
    let all = create_schedule(
        &fleet,
        json!({"task": "minutely", "cron": "* * * * *", "catchup": true}),
    )
    .await;
    let capped = create_schedule(
        &fleet,
        json!({"task": "minutely", "cron": "* * * * *", "catchup": true, "catchup_limit": 4}),
    )
    .await;
    for id in [&latest_only, &all, &capped] {
        missed_minutes(&fleet, id, 10).await;
    }
    let scheduler = fleet.start_scheduler(5000).await;
    let all_runs = wait_for_runs(&fleet, &all, 11).await;
    let capped_runs = wait_for_runs(&fleet, &capped, 4).await;
    let latest_runs = wait_for_runs(&fleet, &latest_only, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    scheduler.stop().await;

    // 10 missed minutes plus the current one, each once, oldest first.
    let all_after = fired_runs(&fleet, &all).await;
    assert!(
        all_after.len() == 11 || all_after.len() == 12,
        "{all_after:?}"
    );
    assert_eq!(all_runs[..11], all_after[..11]);
    for pair in all_after.windows(2) {
        assert_eq!(pair[1].0 - pair[0].0, chrono::Duration::minutes(1));
    }
    // The cap keeps the latest 4.
    let capped_after = fired_runs(&fleet, &capped).await;
    assert_eq!(capped_after[..4], capped_runs[..4]);
    assert!(capped_after.len() <= 5, "{capped_after:?}");
    assert_eq!(capped_after[3].0, all_after[10].0);
    // Without catch-up: only the latest missed fire.
    let latest_after = fired_runs(&fleet, &latest_only).await;
    assert!(latest_after.len() <= 2, "{latest_after:?}");
    assert_eq!(latest_after[0].0, latest_runs[0].0);
    assert_eq!(latest_after[0].0, all_after[10].0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_trigger_and_edits_take_effect_without_a_restart() {
    let fleet = fleet_without_consumer().await;
    create_task(&fleet, "job").await;
    // A long idle time: only the change notification can wake the scheduler in time.
    let scheduler = fleet.start_scheduler(60_000).await;
    let id = create_schedule(&fleet, json!({"task": "job", "cron": "0 0 1 1 *"})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fired_runs(&fleet, &id).await.is_empty());

    // Edit to every second: fires within about a second.
    let edited = Instant::now();
    let (s, body) = fleet
        .put(
            &format!("/schedules/{id}"),
            &json!({"task": "job", "cron": "* * * * * *"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    wait_for_runs(&fleet, &id, 1).await;
    assert!(
        edited.elapsed() < Duration::from_secs(3),
        "the edit took {:?} to fire",
        edited.elapsed()
    );

    // Pause: no more fires; the API shows no next fire.
    let (s, paused) = fleet
        .post(&format!("/schedules/{id}/pause"), &json!({}))
        .await;
    assert_eq!(
        (s, paused["paused"].as_bool()),
        (200, Some(true)),
        "{paused}"
    );
    assert!(paused["next_fire_at"].is_null());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_pause = fired_runs(&fleet, &id).await.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fired_runs(&fleet, &id).await.len(),
        at_pause,
        "fired while paused"
    );

    // Trigger works while paused and makes exactly one run.
    let (s, run) = fleet
        .post(&format!("/schedules/{id}/trigger"), &json!({}))
        .await;
    assert_eq!(s, 202, "{run}");
    assert_eq!(run["schedule_id"], id.as_str());
    assert_eq!(run["trigger"], "api");
    assert_eq!(fired_runs(&fleet, &id).await.len(), at_pause + 1);

    // Resume: fires again, without back-filling the paused seconds.
    let resumed_at = Utc::now();
    let (s, resumed) = fleet
        .post(&format!("/schedules/{id}/resume"), &json!({}))
        .await;
    assert_eq!((s, resumed["paused"].as_bool()), (200, Some(false)));
    wait_for_runs(&fleet, &id, at_pause + 3).await;
    let runs = fired_runs(&fleet, &id).await;
    let backfilled = runs
        .iter()
        .filter(|(at, trigger)| {
            trigger == "schedule" && *at < resumed_at - chrono::Duration::milliseconds(300)
        })
        .count();
    assert_eq!(
        backfilled, at_pause,
        "resume back-filled the paused stretch"
    );
    scheduler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_skip_waits_for_the_previous_run() {
    let fleet = fleet_without_consumer().await;
    create_task(&fleet, "slow").await;
    let scheduler = fleet.start_scheduler(5000).await;
    // No consumer: the first run stays queued, so every later fire is skipped.
    let id = create_schedule(
        &fleet,
        json!({"task": "slow", "cron": "* * * * * *", "overlap": "skip"}),
    )
    .await;
    wait_for_runs(&fleet, &id, 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fired_runs(&fleet, &id).await.len(), 1);
    let metrics = fleet.metrics_text(&scheduler.base).await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("runfleet_scheduler_fires_total{outcome=\"skipped_overlap\"}")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
    scheduler.stop().await;
}

/// Whole seconds between consecutive fires, for runs fired by the cron (not triggers).
fn gaps(runs: &[(DateTime<Utc>, String)]) -> Vec<i64> {
    runs.windows(2)
        .map(|w| (w[1].0 - w[0].0).num_seconds())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_scheduler_catches_up_missed_fires_or_only_the_latest() {
    let fleet = fleet_without_consumer().await;
    create_task(&fleet, "every-second").await;
    let with_catchup = create_schedule(
        &fleet,
        json!({"task": "every-second", "cron": "* * * * * *", "catchup": true}),
    )
    .await;
    let without = create_schedule(
        &fleet,
        json!({"task": "every-second", "cron": "* * * * * *"}),
    )
    .await;
    let first = fleet.start_scheduler(5000).await;
    wait_for_runs(&fleet, &without, 2).await;
    first.stop().await;
    let before = fired_runs(&fleet, &with_catchup).await.len();
    // Down for 4 seconds, then a new scheduler.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let second = fleet.start_scheduler(5000).await;
    wait_for_runs(&fleet, &with_catchup, before + 6).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    second.stop().await;

    let caught_up = fired_runs(&fleet, &with_catchup).await;
    assert!(
        gaps(&caught_up).iter().all(|g| *g == 1),
        "catch-up left a hole: {:?}",
        gaps(&caught_up)
    );
    let latest_only = fired_runs(&fleet, &without).await;
    let holes: Vec<i64> = gaps(&latest_only).into_iter().filter(|g| *g > 1).collect();
    assert_eq!(holes.len(), 1, "one hole for the downtime: {latest_only:?}");
    assert!(holes[0] >= 4, "the missed seconds were skipped: {holes:?}");
}
