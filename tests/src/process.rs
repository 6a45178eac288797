//! Processes and their numbers: signals, `/proc` readings, the workspace's binaries, log
//! lines, and flags of the bench commands.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// True while `pid` is a live process (a zombie counts as gone).
pub fn process_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// A workspace binary of the same build as this executable: `target/<profile>/NAME`
/// (tests run from `target/<profile>/deps/`, binaries such as `chaos` from the profile dir).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let bin = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    bin.unwrap_or_else(|| {
        panic!(
            "{name} not built next to {}: run `cargo build --bins` (cargo nextest run --workspace builds it)",
            exe.display()
        )
    })
}

/// SIGKILLs `pid` and every descendant at once, as when a pod or node dies (the
/// consumer's children live in process groups of their own).
pub fn kill_tree(pid: u32) {
    let mut parents: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let after = stat.rsplit(')').next().unwrap_or("");
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parents.entry(ppid).or_default().push(child);
        }
    }
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        if let Some(kids) = parents.get(&all[i]) {
            all.extend(kids);
        }
        i += 1;
    }
    for p in all {
        send_signal(p as i32, libc::SIGKILL);
    }
}

/// Sends `signal` to process `pid`; one that is gone already is fine. The harness's one use
/// of `unsafe` (the workspace denies it elsewhere).
#[allow(unsafe_code)]
pub fn send_signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) only sends a signal; it touches no memory of ours.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// The number after `--name` on this process's command line, or `default` (for the
/// `chaos` and `venv-bench` commands).
pub fn flag_value(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) process `pid` has used itself (not its children), from
/// /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

/// A `kB` field of /proc/`pid`/status, e.g. `VmHWM:` (0 when unreadable).
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Lines equal to `word` in the file at `path` (0 when it does not exist yet): scripts in
/// tests log "start"/"end" to count how often they really ran.
pub fn count_lines(path: &std::path::Path, word: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == word)
        .count()
}

/// Waits until `path` holds at least `n` lines equal to `word`; panics after 60 s.
pub async fn wait_for_lines(path: &std::path::Path, word: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_lines(path, word) < n {
        assert!(
            Instant::now() < deadline,
            "{} never had {n} '{word}' lines",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
