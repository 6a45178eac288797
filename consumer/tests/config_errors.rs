//! A wrong setting stops the consumer at start with one line naming the setting.

use std::process::Command;

fn start_with(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_runfleet-consumer"))
        .envs(env.iter().copied())
        .output()
        .expect("run runfleet-consumer");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_settings_stop_the_consumer_with_one_line_naming_them() {
    for (env, setting) in [
        (
            ("RUNFLEET_CONSUMER__SLOTS", "many"),
            "RUNFLEET_CONSUMER__SLOTS",
        ),
        (
            ("RUNFLEET_CONSUMER__SLOTS", "0"),
            "RUNFLEET_CONSUMER__SLOTS",
        ),
        (
            ("RUNFLEET_CONSUMER__QUEUES", "ok,bad queue!"),
            "RUNFLEET_CONSUMER__QUEUES",
        ),
        (
            ("RUNFLEET_HTTP__LISTEN", "localhost"),
            "RUNFLEET_HTTP__LISTEN",
        ),
        (
            ("RUNFLEET_DATABASE__URL", "mysql:/x"),
            "RUNFLEET_DATABASE__URL",
        ),
        (
            ("RUNFLEET_AMQP__URL", "http://rabbit"),
            "RUNFLEET_AMQP__URL",
        ),
        (("RUNFLEET_LOG__FORMAT", "xml"), "RUNFLEET_LOG__FORMAT"),
    ] {
        let (code, stderr) = start_with(&[env]);
        assert_eq!(code, Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{env:?}: {stderr}");
        assert!(
            stderr.contains(setting),
            "{env:?} should name {setting}: {stderr}"
        );
    }
}
