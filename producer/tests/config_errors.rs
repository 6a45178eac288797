//! A wrong setting stops the producer (and `migrate`) at start with one line naming it.

use std::process::Command;

#[test]
fn bad_settings_stop_the_producer_with_one_line_naming_them() {
    for (args, env, setting) in [
        (
            vec![],
            ("RUNFLEET_HTTP__LISTEN", "nope"),
            "RUNFLEET_HTTP__LISTEN",
        ),
        (
            vec!["migrate"],
            ("RUNFLEET_DATABASE__URL", "not a url"),
            "RUNFLEET_DATABASE__URL",
        ),
        (
            vec![],
            ("RUNFLEET_PRODUCER__QUEUES", ""),
            "RUNFLEET_PRODUCER__QUEUES",
        ),
        (
            vec![],
            ("RUNFLEET_PRODUCER__DEFAULT_TIMEOUT_SECONDS", "0"),
            "RUNFLEET_PRODUCER__DEFAULT_TIMEOUT_SECONDS",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_runfleet-producer"))
            .args(&args)
            .env(env.0, env.1)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{env:?}: {stderr}");
        assert!(
            stderr.contains(setting),
            "{env:?} should name {setting}: {stderr}"
        );
    }
}

#[test]
fn missing_config_file_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_runfleet-producer"))
        .args(["--config", "/nonexistent/runfleet.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/runfleet.toml"));
}
