use super::*;
use tokio::io::AsyncReadExt;

async fn output(command: &Command) -> (ExitStatus, String, String) {
    let (_, status, out, err) = output_with(command, &[]).await;
    (status, out, err)
}

/// Runs `command` to its end: its pid, exit status, stdout and stderr.
async fn output_with(command: &Command, rlimits: &[Rlimit]) -> (i32, ExitStatus, String, String) {
    let mut child = spawn(command, rlimits).unwrap();
    let mut out = String::new();
    let mut err = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (a, b) = tokio::join!(
        stdout.read_to_string(&mut out),
        stderr.read_to_string(&mut err)
    );
    a.unwrap();
    b.unwrap();
    (child.id(), child.wait().await.unwrap(), out, err)
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(script);
    c
}

#[tokio::test]
async fn the_child_sees_only_the_environment_it_is_given() {
    let mut c = sh("env | sort");
    c.env("B", "2").env("A", "1").env("A", "one");
    let (status, out, _) = output(&c).await;
    assert!(status.success());
    // dash adds PWD itself.
    let vars: Vec<&str> = out.lines().filter(|l| !l.starts_with("PWD=")).collect();
    assert_eq!(vars, ["A=one", "B=2"]);
}

#[tokio::test]
async fn arguments_working_directory_and_exit_code_arrive() {
    let dir = std::env::temp_dir();
    let mut c = sh("pwd; echo \"$0|$1|$2\"; echo oops >&2; exit 7");
    c.arg("zero").args(["one", "two words"]).current_dir(&dir);
    let (status, out, err) = output(&c).await;
    assert_eq!(status.code(), Some(7));
    let real = std::fs::canonicalize(&dir).unwrap();
    assert_eq!(out, format!("{}\nzero|one|two words\n", real.display()));
    assert_eq!(err, "oops\n");
}

/// Descriptors of this process that an exec'd child inherits (not close-on-exec).
fn inheritable_fds() -> Vec<i32> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        // SAFETY: F_GETFD only reads the descriptor's flags.
        .filter(|&fd| {
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            flags >= 0 && flags & libc::FD_CLOEXEC == 0
        })
        .collect()
}

#[tokio::test]
async fn none_of_our_descriptors_leak_into_the_child() {
    let inherited = inheritable_fds();
    // A second child holds its pipes open meanwhile.
    let _other = spawn(&sh("sleep 5"), &[]).unwrap();
    let (_, out, _) = output(Command::new("/bin/ls").arg("/proc/self/fd")).await;
    for fd in out.lines().map(|l| l.parse::<i32>().unwrap()) {
        // 0–2 are ours to give, 3 is ls's own directory handle.
        assert!(
            fd <= 3 || inherited.contains(&fd),
            "fd {fd} leaked into the child: {out}"
        );
    }
}

#[tokio::test]
async fn no_signal_is_blocked_and_sigpipe_is_not_ignored() {
    // grep reads its own status, exec'd straight by the spawner: a shell in between
    // would show its own mask (dash blocks every signal around each fork it makes).
    let mut grep = Command::new("grep");
    grep.args(["-E", "^(SigBlk|SigIgn)", "/proc/self/status"]);
    let (_, out, _) = output(&grep).await;
    assert_eq!(out.lines().count(), 2, "{out}");
    for line in out.lines() {
        let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
        if line.starts_with("SigBlk") {
            assert_eq!(mask, 0, "{line}");
        } else {
            assert_eq!(
                mask & (1 << (libc::SIGPIPE - 1)),
                0,
                "SIGPIPE ignored: {line}"
            );
        }
    }
}

#[tokio::test]
async fn the_child_leads_its_own_process_group() {
    let (pid, status, out, _) = output_with(&sh("cut -d' ' -f5 /proc/$$/stat"), &[]).await;
    assert!(status.success());
    assert_eq!(out.trim(), pid.to_string());
}

#[tokio::test]
async fn rlimits_are_set_before_exec() {
    let limit = Rlimit {
        resource: libc::RLIMIT_NOFILE,
        soft: 33,
        hard: 44,
    };
    let (_, _, out, _) = output_with(&sh("ulimit -n; ulimit -Hn"), &[limit]).await;
    assert_eq!(out, "33\n44\n");
}

#[tokio::test]
async fn a_bare_name_is_found_on_the_childs_path() {
    let (status, out, _) = output(Command::new("sh").arg("-c").arg("echo found")).await;
    assert!(status.success());
    assert_eq!(out, "found\n");
    let mut c = Command::new("sh");
    c.env("PATH", "/nonexistent");
    let err = spawn(&c, &[]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("/nonexistent"), "{err}");
}

#[test]
fn which_finds_only_executable_files() {
    let sh = which("sh").expect("sh on PATH");
    assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
    assert_eq!(which("/bin/sh"), Some(PathBuf::from("/bin/sh")));
    assert_eq!(which("no-such-program-rf"), None);
    let plain = std::env::temp_dir().join(format!("rf-not-exec-{}", std::process::id()));
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    assert_eq!(which(plain.to_str().unwrap()), None);
    std::fs::remove_file(&plain).unwrap();
}

#[tokio::test]
async fn set_up_failures_say_which_step_failed() {
    let missing = Command::new("/nonexistent/interpreter");
    let err = spawn(&missing, &[]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);

    let mut c = sh("true");
    c.current_dir("/nonexistent-dir");
    let err = spawn(&c, &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("working directory /nonexistent-dir"),
        "{err}"
    );

    // A soft limit above the hard one is EINVAL.
    let err = spawn(
        &sh("true"),
        &[Rlimit {
            resource: libc::RLIMIT_NOFILE,
            soft: 10,
            hard: 5,
        }],
    )
    .unwrap_err();
    assert!(err.to_string().contains("resource limits"), "{err}");

    let mut c = sh("true");
    c.arg("nul\0byte");
    assert_eq!(
        spawn(&c, &[]).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_children_at_once_each_get_their_own_output() {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            tokio::spawn(async move {
                let (status, out, _) = output(&sh(&format!("echo {i}"))).await;
                assert!(status.success());
                assert_eq!(out, format!("{i}\n"));
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn a_dropped_child_is_killed_and_reaped() {
    let child = spawn(&sh("sleep 30"), &[]).unwrap();
    let pid = child.id();
    drop(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // Gone from /proc means killed and reaped (a zombie keeps its entry).
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(std::time::Instant::now() < deadline, "{pid} left behind");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
