//! The `runfleet` binary when there is no runfleet API to talk to: each failure is one
//! line on stderr, exit 2, naming what failed and what to set. (The commands against a
//! real fleet are tested in `tests/tests/cli.rs`; this file also makes
//! `cargo nextest run --workspace` build the binary those tests run.)

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

fn runfleet(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runfleet"))
        .args(args)
        .env("RUNFLEET_URL", url)
        .env_remove("RUNFLEET_TOKEN")
        .output()
        .expect("start the runfleet CLI")
}

/// Asserts exit 2 and one stderr line starting `runfleet: ` that holds every needle.
fn one_line_error(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("runfleet: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "'{needle}' not in: {err}");
    }
}

#[test]
fn an_unreachable_api_is_named_with_the_setting_to_change() {
    // A port that was just free and is now closed: the connection is refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = runfleet(&url, &["runs", "list"]);
    one_line_error(
        &out,
        &["cannot reach the runfleet API", &url, "RUNFLEET_URL"],
    );
}

#[test]
fn a_server_that_is_not_the_api_is_named_not_reported_as_a_refusal() {
    // A proxy's error page: HTML, no runfleet error body.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        // Read the whole request head: closing with unread bytes would send a reset
        // that the client could see before the answer.
        let mut request = Vec::new();
        let mut chunk = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut chunk).unwrap();
            assert!(n > 0, "the CLI closed before sending its request");
            request.extend_from_slice(&chunk[..n]);
        }
        let page = "<html><body>502 Bad Gateway</body></html>";
        write!(
            conn,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{page}",
            page.len()
        )
        .unwrap();
    });
    let out = runfleet(&url, &["scripts", "list"]);
    server.join().unwrap();
    one_line_error(
        &out,
        &[&url, "502", "without a runfleet error", "RUNFLEET_URL"],
    );
}

#[test]
fn a_bad_argument_exits_2_before_any_request() {
    // Nothing listens on port 9 (discard) here; a request would fail differently.
    let out = runfleet("http://127.0.0.1:9", &["runs", "list", "--limit", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--limit"), "{err}");
    assert!(!err.contains("cannot reach"), "{err}");
}
