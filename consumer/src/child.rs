//! The child process lifecycle: spawn in its own process group, wait with a timeout,
//! SIGTERM then SIGKILL the whole group, and never leave a group member behind.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runfleet_common::limits::RunLimits;
use runfleet_common::live_logs::Stream;
use runfleet_common::run_state::CapturedOutput;
use tokio_util::sync::CancellationToken;

use crate::live::LiveOutput;
use crate::output::capture;
use crate::spawn::{self, Command, Rlimit, signal_group};

/// How a child ended.
#[derive(Debug)]
pub struct Finished {
    /// The script's pid, which is also its process group id.
    pub pid: i32,
    /// The exit status, or None when it was killed for running too long.
    pub status: Option<ExitStatus>,
    /// True when the timeout fired.
    pub timed_out: bool,
    /// True when it was stopped by `cancel`.
    pub cancelled: bool,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
    /// Captured stdout.
    pub stdout: CapturedOutput,
    /// Captured stderr.
    pub stderr: CapturedOutput,
}

/// What to run and the limits that apply.
#[derive(Debug)]
pub struct Limits {
    /// Kill after this long.
    pub timeout: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Cap on each captured stream.
    pub output_limit: usize,
    /// rlimits of the script's process (inherited by its children).
    pub rlimits: RunLimits,
}

/// The (resource, soft, hard) rlimits to set for `limits`. CPU gets one second of slack
/// between SIGXCPU (soft) and SIGKILL (hard), so a script can see the signal.
fn rlimit_table(limits: &RunLimits) -> Vec<Rlimit> {
    let both = |resource, v| Rlimit {
        resource,
        soft: v,
        hard: v,
    };
    let mut table = Vec::new();
    if let Some(v) = limits.cpu_seconds {
        table.push(Rlimit {
            resource: libc::RLIMIT_CPU,
            soft: v,
            hard: v + 1,
        });
    }
    if let Some(v) = limits.memory_bytes {
        table.push(both(libc::RLIMIT_AS, v));
    }
    if let Some(v) = limits.open_files {
        table.push(both(libc::RLIMIT_NOFILE, v));
    }
    if let Some(v) = limits.processes {
        table.push(both(libc::RLIMIT_NPROC, v));
    }
    table
}

/// Kills the group when dropped, so a cancelled or panicking run task leaves no process.
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, libc::SIGKILL);
    }
}

/// Both streams' capture, each with what was dropped.
type Captured = (CapturedOutput, CapturedOutput);

/// Waits until `child` exits (`Ok(status)`) or `until` completes (`Err(its value)`),
/// reading the child's output meanwhile, so a script never blocks on a full pipe. The
/// output lands in `captured` if both pipes close first.
async fn wait_draining<T>(
    child: &mut spawn::Child,
    mut output: Pin<&mut impl Future<Output = Captured>>,
    captured: &mut Option<Captured>,
    until: impl Future<Output = T>,
) -> std::io::Result<Result<ExitStatus, T>> {
    tokio::pin!(until);
    loop {
        tokio::select! {
            status = child.wait() => return Ok(Ok(status?)),
            both = &mut output, if captured.is_none() => *captured = Some(both),
            value = &mut until => return Ok(Err(value)),
        }
    }
}

/// Spawns `command` as the leader of a new process group and waits for it within `limits`
/// or until `cancel` fires (then the group is stopped as on a timeout). Its output also
/// goes to `live` as it comes.
/// Returns the spawn error if it could not start.
pub async fn run(
    command: Command,
    limits: &Limits,
    cancel: &CancellationToken,
    live: &Arc<LiveOutput>,
) -> std::io::Result<Finished> {
    let started = Instant::now();
    let mut child = spawn::spawn(&command, &rlimit_table(&limits.rlimits))?;
    let pgid = child.id();
    let guard = GroupGuard(pgid);
    // Both streams are read in this task, not in tasks of their own, so no reader
    // outlives the run: a run whose future is dropped drops its pipes with it.
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let output = async {
        tokio::join!(
            capture(stdout, limits.output_limit, live.clone(), Stream::Stdout),
            capture(stderr, limits.output_limit, live.clone(), Stream::Stderr),
        )
    };
    tokio::pin!(output);
    let mut captured = None;

    let stop = wait_draining(&mut child, output.as_mut(), &mut captured, async {
        tokio::select! {
            () = tokio::time::sleep(limits.timeout) => true,
            () = cancel.cancelled() => false,
        }
    })
    .await?;
    let (status, timed_out, cancelled) = match stop {
        Ok(status) => (Some(status), false, false),
        Err(timed_out) => {
            signal_group(pgid, libc::SIGTERM);
            let grace = tokio::time::sleep(limits.kill_grace);
            if wait_draining(&mut child, output.as_mut(), &mut captured, grace)
                .await?
                .is_err()
            {
                signal_group(pgid, libc::SIGKILL);
                // `pending` never completes: this returns once the child is gone.
                let never = std::future::pending::<()>();
                let _ = wait_draining(&mut child, output.as_mut(), &mut captured, never).await?;
            }
            (None, timed_out, !timed_out)
        }
    };
    let elapsed = started.elapsed();
    // Whatever the script left running in its group goes with it; this also closes the
    // pipes those processes held, so the readers below finish.
    drop(guard);

    // A process that left the group (setsid) may still hold a pipe: don't wait forever.
    let (stdout, stderr) = match captured {
        Some(both) => both,
        None => tokio::time::timeout(Duration::from_secs(2), output)
            .await
            .unwrap_or_default(),
    };
    Ok(Finished {
        pid: pgid,
        status,
        timed_out,
        cancelled,
        elapsed,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_live() -> Arc<LiveOutput> {
        Arc::new(LiveOutput::disabled())
    }

    fn limits(timeout_ms: u64) -> Limits {
        Limits {
            timeout: Duration::from_millis(timeout_ms),
            kill_grace: Duration::from_millis(300),
            output_limit: 1024,
            rlimits: RunLimits::default(),
        }
    }

    #[tokio::test]
    async fn rlimits_apply_to_the_script_and_its_children() {
        let mut with_limits = limits(5000);
        with_limits.rlimits = RunLimits {
            open_files: Some(40),
            cpu_seconds: Some(7),
            ..RunLimits::default()
        };
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("ulimit -n; ulimit -t; sh -c 'ulimit -n'");
        let finished = run(cmd, &with_limits, &CancellationToken::new(), &no_live())
            .await
            .unwrap();
        assert_eq!(finished.stdout.text, "40\n7\n40\n");
    }

    #[tokio::test]
    async fn a_busy_loop_is_stopped_at_its_cpu_limit() {
        let mut with_limits = limits(20_000);
        with_limits.rlimits = RunLimits {
            cpu_seconds: Some(1),
            ..RunLimits::default()
        };
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("while :; do :; done");
        let finished = run(cmd, &with_limits, &CancellationToken::new(), &no_live())
            .await
            .unwrap();
        let signal = std::os::unix::process::ExitStatusExt::signal(&finished.status.unwrap());
        assert_eq!(signal, Some(libc::SIGXCPU));
        assert!(!finished.timed_out);
        assert!(
            finished.elapsed < Duration::from_secs(10),
            "{:?}",
            finished.elapsed
        );
    }

    /// The state letter and process group of `pid` from `/proc/<pid>/stat`, if it exists.
    fn state_and_group(pid: &str) -> Option<(char, i32)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The name in parentheses may hold spaces; the fields after it do not.
        let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let group = fields.nth(1)?.parse().ok()?;
        Some((state, group))
    }

    /// The live members of process group `pgid` (a zombie waiting for its reaper is gone).
    fn live_members(pgid: i32) -> Vec<i32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| matches!(state_and_group(name), Some((s, g)) if g == pgid && s != 'Z'))
            .filter_map(|name| name.parse().ok())
            .collect()
    }

    /// Fails unless every member of group `pgid` is gone within 5 s. A SIGKILLed process
    /// dies only when it next gets a CPU, which on a loaded machine can be after `run`
    /// has returned, so a look right after the kill would race it.
    async fn assert_group_ends(pgid: i32) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let live = live_members(pgid);
            if live.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "members {live:?} of group {pgid} outlived it"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    #[tokio::test]
    async fn captures_exit_code_and_streams() {
        let f = run(
            sh("echo out; echo err >&2; exit 3"),
            &limits(5000),
            &CancellationToken::new(),
            &no_live(),
        )
        .await
        .unwrap();
        assert_eq!(f.status.unwrap().code(), Some(3));
        assert!(!f.timed_out);
        assert_eq!(f.stdout.text, "out\n");
        assert_eq!(f.stderr.text, "err\n");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group_even_if_sigterm_is_ignored() {
        // The sleep inherits the ignored SIGTERM. The group is scanned rather than a pid
        // file read: under load the shell may not have written one within the timeout.
        let f = run(
            sh("trap '' TERM; sleep 30 & wait"),
            &limits(300),
            &CancellationToken::new(),
            &no_live(),
        )
        .await
        .unwrap();
        assert!(f.timed_out);
        assert!(f.status.is_none());
        assert_group_ends(f.pid).await;
    }

    #[tokio::test]
    async fn background_leftovers_are_killed_after_a_normal_exit() {
        let f = run(
            sh("sleep 30 & echo $!"),
            &limits(5000),
            &CancellationToken::new(),
            &no_live(),
        )
        .await
        .unwrap();
        assert_eq!(f.status.unwrap().code(), Some(0));
        let pid: i32 = f.stdout.text.trim().parse().unwrap();
        assert_ne!(pid, f.pid, "the shell printed its own pid");
        assert_group_ends(f.pid).await;
    }

    #[tokio::test]
    async fn cancel_stops_the_group_promptly() {
        let cancel = CancellationToken::new();
        let fire = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            fire.cancel();
        });
        let started = std::time::Instant::now();
        let f = run(sh("sleep 30"), &limits(60_000), &cancel, &no_live())
            .await
            .unwrap();
        assert!(f.cancelled && !f.timed_out);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn output_beyond_the_pipe_buffers_is_drained_while_waiting() {
        // 1 MiB on each stream: the script would block on a full pipe if nothing read
        // until it exited.
        let f = run(
            sh("head -c 1048576 /dev/zero | tr '\\0' o; head -c 1048576 /dev/zero | tr '\\0' e >&2; echo end"),
            &limits(20_000),
            &CancellationToken::new(),
            &no_live(),
        )
        .await
        .unwrap();
        assert_eq!(f.status.unwrap().code(), Some(0));
        assert!(!f.timed_out);
        assert!(f.stdout.truncated && f.stderr.truncated);
        assert!(
            f.stdout.text.ends_with("oooend\n"),
            "{}",
            &f.stdout.text[1000..]
        );
        assert_eq!(f.stderr.text, "e".repeat(1024));
    }

    #[tokio::test]
    async fn a_pipe_held_by_a_process_outside_the_group_does_not_hold_the_run() {
        let pidfile = std::env::temp_dir().join(format!("rf-setsid-{}", std::process::id()));
        // The shell waits for the escaped process's pid (written whole by mv): a fixed
        // pause could end, and the group be killed, before setsid has left it.
        let script = format!(
            "setsid sh -c 'echo $$ > {p}.tmp; mv {p}.tmp {p}; exec sleep 30' & \
             while [ ! -s {p} ]; do sleep 0.01; done; echo started",
            p = pidfile.display()
        );
        let started = Instant::now();
        let f = run(
            sh(&script),
            &limits(20_000),
            &CancellationToken::new(),
            &no_live(),
        )
        .await
        .unwrap();
        let elapsed = started.elapsed();
        let escaped: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        signal_group(escaped, libc::SIGKILL);
        std::fs::remove_file(&pidfile).unwrap();
        assert_eq!(f.status.unwrap().code(), Some(0));
        // The escaped sleep still holds stdout: the reads give up 2 s after the exit.
        assert!(
            elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(6),
            "{elapsed:?}"
        );
    }

    #[tokio::test]
    async fn spawn_failure_is_an_error() {
        let err = run(
            Command::new("/nonexistent/interpreter"),
            &limits(1000),
            &CancellationToken::new(),
            &no_live(),
        )
        .await;
        assert!(err.is_err());
    }
}
