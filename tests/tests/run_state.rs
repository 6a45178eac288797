//! The run state machine called directly: every transition tried from every status, on a
//! database of its own. The allowed moves happen and return what they say; the refused
//! ones return so and leave the run exactly as it was (status and attempt).

use std::time::Duration;

use runfleet_common::run_state::{
    self, CancelOutcome, CapturedOutput, Claim, Outcome, RetryOutcome, RunStatus,
};
use runfleet_common::runs::{self, NewRun, RetryPolicy, RunSettings, SubmitPolicy};
use runfleet_common::scripts::{self, NewScript};
use runfleet_tests::TestDb;
use uuid::Uuid;

use RunStatus::*;

/// A run at attempt 1 of 2, moved straight into `status` by SQL (setup, not the subject):
/// a running one has a heartbeat an hour old, a retrying one is due.
async fn run_in(db: &TestDb, status: RunStatus) -> Uuid {
    let client = db.pool.get().await.unwrap();
    client.batch_execute("TRUNCATE runs CASCADE").await.unwrap();
    let policy = SubmitPolicy {
        queues: vec!["default".into()],
        default_queue: "default".into(),
        default_timeout_seconds: 60,
        max_timeout_seconds: 3600,
        max_parameters_bytes: 1 << 16,
        default_retry: RetryPolicy::default(),
    };
    let spec = NewRun {
        script: "s.sh".into(),
        settings: RunSettings {
            max_attempts: Some(2),
            ..RunSettings::default()
        },
        ..NewRun::default()
    }
    .check(&policy)
    .unwrap();
    let id = runs::insert(&client, &spec).await.unwrap().run.id;
    let set = match status {
        Queued => "status = 'queued'",
        Running => {
            "status = 'running', started_at = now(), worker = 'w',
             heartbeat_at = now() - interval '1 hour'"
        }
        Retrying => "status = 'retrying', retry_at = now() - interval '1 second'",
        _ => "status = $2, finished_at = now()",
    };
    let sql = format!("UPDATE runs SET {set} WHERE id = $1 AND ($2::text IS NOT NULL)");
    client
        .execute(&sql, &[&id, &status.as_str()])
        .await
        .unwrap();
    id
}

/// A database of its own holding the script `s.sh` every run here uses.
async fn db_with_script() -> TestDb {
    let db = TestDb::create().await;
    scripts::register(
        &db.pool,
        NewScript {
            name: "s.sh".into(),
            content: "exit 0\n".into(),
            language: None,
            requirements: vec![],
        },
        1 << 16,
    )
    .await
    .unwrap();
    db
}

async fn state(db: &TestDb, id: Uuid) -> (RunStatus, i32) {
    let row = db
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT status, attempt FROM runs WHERE id = $1", &[&id])
        .await
        .unwrap();
    (RunStatus::parse(row.get(0)).unwrap(), row.get(1))
}

fn outcome(status: RunStatus) -> Outcome {
    Outcome {
        status,
        exit_code: Some(if status == Succeeded { 0 } else { 1 }),
        error_code: None,
        error: None,
        result: None,
        stdout: CapturedOutput::default(),
        stderr: CapturedOutput::default(),
        venv_signature: None,
    }
}

/// One transition: its name, and what it does to a run in each status: `Some((status,
/// attempt))` it moves to, or None when it must refuse and leave the run alone.
type Expect = fn(RunStatus) -> Option<(RunStatus, i32)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_from_every_status_moves_only_what_it_may() {
    let db = db_with_script().await;

    let table: [(&str, Expect); 9] = [
        ("claim", |s| (s == Queued).then_some((Running, 1))),
        ("finish succeeded", |s| {
            (s == Running).then_some((Succeeded, 1))
        }),
        // Attempt 1 of 2 failed: it waits for its retry, still attempt 1.
        ("finish failed", |s| (s == Running).then_some((Retrying, 1))),
        ("promote due retries", |s| {
            (s == Retrying).then_some((Queued, 2))
        }),
        ("reclaim stale", |s| (s == Running).then_some((Queued, 2))),
        ("release", |s| (s == Running).then_some((Queued, 2))),
        ("dead-letter", |s| (s == Queued).then_some((Dead, 1))),
        // Cancelling a running run only asks its consumer; the status stays until then.
        ("cancel", |s| match s {
            Queued | Retrying => Some((Cancelled, 1)),
            Running => Some((Running, 1)),
            _ => None,
        }),
        ("retry", |s| s.is_final().then_some((Queued, 2))),
    ];

    let mut checked = 0;
    for (name, expect) in table {
        for from in RunStatus::ALL {
            let id = run_in(&db, from).await;
            let client = db.pool.get().await.unwrap();
            // Whether the transition said it moved the run.
            let moved = match name {
                "claim" => matches!(
                    run_state::claim(&client, id, 1, "w").await.unwrap(),
                    Claim::Claimed(_)
                ),
                "finish succeeded" => run_state::finish(&client, id, 1, &outcome(Succeeded))
                    .await
                    .unwrap()
                    .is_some(),
                "finish failed" => run_state::finish(&client, id, 1, &outcome(Failed))
                    .await
                    .unwrap()
                    .is_some(),
                "promote due retries" => !run_state::promote_due_retries(&client)
                    .await
                    .unwrap()
                    .is_empty(),
                "reclaim stale" => !run_state::reclaim_stale(&client, Duration::from_secs(60), 3)
                    .await
                    .unwrap()
                    .requeued
                    .is_empty(),
                "release" => run_state::release(&client, &[(id, 1)]).await.unwrap() == 1,
                "dead-letter" => run_state::dead_letter(&client, id, 1, "test")
                    .await
                    .unwrap(),
                "cancel" => match run_state::cancel(&client, id).await.unwrap() {
                    CancelOutcome::Cancelled | CancelOutcome::Requested => true,
                    CancelOutcome::AlreadyFinal(s) => {
                        assert_eq!(s, from, "cancel reported another status");
                        false
                    }
                    CancelOutcome::Unknown => panic!("cancel did not find the run"),
                },
                "retry" => match run_state::retry(&client, id).await.unwrap() {
                    RetryOutcome::Queued => true,
                    RetryOutcome::NotFinished(s) => {
                        assert_eq!(s, from, "retry reported another status");
                        false
                    }
                    RetryOutcome::Unknown => panic!("retry did not find the run"),
                },
                other => unreachable!("{other}"),
            };
            let after = state(&db, id).await;
            match expect(from) {
                Some(to) => {
                    assert!(moved, "{name} from {from:?} refused; expected {to:?}");
                    assert_eq!(after, to, "{name} from {from:?}");
                }
                None => {
                    assert!(!moved, "{name} from {from:?} said it moved the run");
                    assert_eq!(after, (from, 1), "{name} from {from:?} changed the run");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 9 * RunStatus::ALL.len());
}

/// A claim or finish for another attempt than the run's is refused, even in the right
/// status: a stale message or a late consumer never moves a run that moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_attempt_moves_nothing() {
    let db = db_with_script().await;
    let queued = run_in(&db, Queued).await;
    let client = db.pool.get().await.unwrap();
    assert!(matches!(
        run_state::claim(&client, queued, 2, "w").await.unwrap(),
        Claim::NotQueued { attempt: 1, .. }
    ));
    assert!(
        !run_state::dead_letter(&client, queued, 2, "test")
            .await
            .unwrap()
    );
    assert_eq!(state(&db, queued).await, (Queued, 1));

    let running = run_in(&db, Running).await;
    assert!(
        run_state::finish(&client, running, 2, &outcome(Succeeded))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        run_state::release(&client, &[(running, 2)]).await.unwrap(),
        0
    );
    assert_eq!(state(&db, running).await, (Running, 1));
}
