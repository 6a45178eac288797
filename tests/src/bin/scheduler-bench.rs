//! `scheduler-bench`: fire lag, CPU and memory of one scheduler process with many
//! schedules.
//!
//! Starts an isolated fleet (own database and queue prefix, no consumer), creates
//! `--schedules` schedules over the API: `--per-second` of them fire every second, the rest
//! split between every-minute and hourly ones, each at a random second (and minute) so the
//! fires spread as real crontabs do. Then a `runfleet-scheduler` process runs for
//! `--seconds`; lag is `published_at - scheduled_for` of every run (the run committed and
//! its message confirmed by RabbitMQ), CPU from /proc, RSS peak from VmHWM.
//!   cargo run --release -p runfleet-tests --bin scheduler-bench -- [--schedules 10000]
//!     [--per-second 20] [--seconds 120]

use std::time::{Duration, Instant};

use chrono::Utc;
use runfleet_tests::{Fleet, FleetOptions, cpu_seconds, flag_value, status_kib, workspace_bin};
use serde_json::json;

#[tokio::main]
async fn main() {
    let schedules = flag_value("--schedules", 10_000);
    let per_second = flag_value("--per-second", 20).min(schedules);
    let seconds = flag_value("--seconds", 120) as i64;
    let fleet = Fleet::start_with(FleetOptions {
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    fleet.register("noop.sh", "exit 0\n").await;
    let (s, body) = fleet
        .post("/tasks", &json!({"name": "bench", "script": "noop.sh"}))
        .await;
    assert_eq!(s, 201, "{body}");

    let started = Instant::now();
    let rest = schedules - per_second;
    let minutely = rest * 6 / 10;
    let mut created = 0;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next_random = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    while created < schedules {
        let cron = if created < per_second {
            "* * * * * *".to_string()
        } else if created < per_second + minutely {
            format!("{} * * * * *", next_random(60))
        } else {
            format!("{} {} * * * *", next_random(60), next_random(60))
        };
        let (s, body) = fleet
            .post("/schedules", &json!({"task": "bench", "cron": cron}))
            .await;
        assert_eq!(s, 201, "{body}");
        created += 1;
    }
    let setup = started.elapsed();

    let c = &fleet.consumer_config;
    let mut scheduler = std::process::Command::new(workspace_bin("runfleet-scheduler"))
        .env("RUNFLEET_DATABASE__URL", &c.database.url)
        .env("RUNFLEET_AMQP__URL", &fleet.amqp.url)
        .env("RUNFLEET_AMQP__PREFIX", &fleet.amqp.prefix)
        .env("RUNFLEET_HTTP__LISTEN", "127.0.0.1:0")
        .env("RUNFLEET_LOG__LEVEL", "warn")
        .spawn()
        .expect("start runfleet-scheduler");
    let pid = scheduler.id();
    // Measure from the next whole second after a short warm-up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window_start =
        chrono::DateTime::from_timestamp(Utc::now().timestamp() + 1, 0).expect("valid time");
    let window_end = window_start + chrono::Duration::seconds(seconds);
    tokio::time::sleep(
        (window_start - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
    .await;
    let cpu_before = cpu_seconds(pid);
    let mut rss_samples = Vec::new();
    while Utc::now() < window_end {
        rss_samples.push(status_kib(pid, "VmRSS:"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let cpu = cpu_seconds(pid) - cpu_before;
    // Let the last fires of the window publish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hwm = status_kib(pid, "VmHWM:");
    runfleet_tests::send_signal(pid as i32, libc::SIGTERM);
    let _ = scheduler.wait();

    let db = fleet.db().await;
    let row = db
        .query_one(
            "SELECT count(*),
                    count(*) FILTER (WHERE published_at IS NULL),
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - scheduled_for)),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - scheduled_for)),
                    max(extract(epoch FROM published_at - scheduled_for))::float8
               FROM runs WHERE scheduled_for >= $1 AND scheduled_for < $2",
            &[&window_start, &window_end],
        )
        .await
        .unwrap();
    let fires: i64 = row.get(0);
    let unpublished: i64 = row.get(1);
    let p50: Option<f64> = row.get(2);
    let p99: Option<f64> = row.get(3);
    let max: Option<f64> = row.get(4);
    // Every fire the crons call for in the window, from the stored expressions.
    let expected: i64 = db
        .query("SELECT cron FROM schedules", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let cron = runfleet_common::cron::CronSchedule::parse(r.get(0), "UTC").unwrap();
            let (due, _) = cron.due_between(
                window_start,
                window_end - chrono::Duration::seconds(1),
                true,
                usize::MAX,
            );
            due.len() as i64
        })
        .sum();
    rss_samples.sort_unstable();
    let rss_median = rss_samples.get(rss_samples.len() / 2).copied().unwrap_or(0);
    let ms = |v: Option<f64>| v.map_or("-".into(), |s| format!("{:.1} ms", s * 1000.0));

    println!();
    println!(
        "scheduler-bench: {schedules} schedules ({per_second} per-second, {minutely} every-minute, {} hourly), {seconds} s, one scheduler process",
        rest - minutely
    );
    println!("| figure | value |");
    println!("| --- | --- |");
    println!(
        "| setup (create schedules over the API) | {:.1} s |",
        setup.as_secs_f64()
    );
    println!("| fires expected in the window | {expected} |");
    println!("| runs made (one per fire) | {fires} |");
    println!("| missing fires | {} |", expected - fires);
    println!("| runs not published | {unpublished} |");
    println!("| fire rate | {:.1} /s |", fires as f64 / seconds as f64);
    println!("| fire lag p50 | {} |", ms(p50));
    println!("| fire lag p99 | {} |", ms(p99));
    println!("| fire lag max | {} |", ms(max));
    println!(
        "| scheduler CPU | {cpu:.2} s ({:.1}% of one core) |",
        cpu / seconds as f64 * 100.0
    );
    println!(
        "| scheduler RSS median / peak | {:.1} / {:.1} MiB |",
        rss_median as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    let pass =
        fires == expected && unpublished == 0 && p99.is_some_and(|p| p < 0.1) && hwm < 64 * 1024;
    println!(
        "{}: targets p99 < 100 ms and RSS < 64 MiB, every fire once",
        if pass { "PASS" } else { "MISS" }
    );
}
