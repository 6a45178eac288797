//! kill -9 a consumer process (and its installer) in the middle of a venv install: the
//! half-built venv is never used, and the restarted consumer builds a correct one.

use std::time::{Duration, Instant};

use runfleet_tests::pyindex::PyIndex;
use runfleet_tests::{Fleet, FleetOptions, kill_tree};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_consumer_mid_install_leaves_no_half_venv() {
    let index = PyIndex::start(&[("crashy", "2.5", &[])]).await;
    let fleet = Fleet::start_with(FleetOptions {
        index_url: Some(index.url.clone()),
        with_consumer: false,
        ..FleetOptions::default()
    })
    .await;
    let script = "import crashy, json, os\njson.dump({'v': crashy.VERSION}, open(os.environ['RUNFLEET_RESULT_PATH'], 'w'))\n";
    let (s, body) = fleet
        .post(
            "/scripts",
            &json!({"name": "crashy.py", "content": script, "requirements": ["crashy"]}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let cache = fleet.consumer_config.venv.cache_dir.clone();
    let tmp_dirs = || -> Vec<String> {
        std::fs::read_dir(&cache)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(".tmp-") && !n.ends_with(".txt"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let complete_venvs = || -> usize {
        std::fs::read_dir(&cache)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().join(".runfleet-venv.json").is_file())
                    .count()
            })
            .unwrap_or(0)
    };

    index.set_gate(false);
    let mut consumer = fleet.spawn_consumer_process();
    fleet.submit(json!({"script": "crashy.py"})).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while index.waiting() == 0 || tmp_dirs().is_empty() {
        assert!(
            Instant::now() < deadline,
            "install never started (waiting {})",
            index.waiting()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill_tree(consumer.id());
    let _ = consumer.wait();
    assert_eq!(complete_venvs(), 0, "a half-built venv was published");
    assert!(
        !tmp_dirs().is_empty(),
        "the killed build left its temp dir (as a crash does)"
    );

    index.set_gate(true);
    let mut consumer = fleet.spawn_consumer_process();
    let id = fleet.submit(json!({"script": "crashy.py"})).await;
    let run = fleet.wait_final(&id, Duration::from_secs(120)).await;
    kill_tree(consumer.id());
    let _ = consumer.wait();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["result"]["v"], "2.5");
    assert_eq!(complete_venvs(), 1);
    assert!(
        tmp_dirs().is_empty(),
        "leftovers of the killed build remain: {:?}",
        tmp_dirs()
    );
}
