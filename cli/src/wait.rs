//! Waiting for a run: a live status line on a terminal (status and elapsed time, redrawn
//! in place), plain lines when stderr is not a terminal.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::answers::{self, LogEvent, Logs, Run};
use crate::api::{Api, CliError, encode};
use crate::render::{self, Output};

/// Polls the run until it is final and returns it (the API's JSON, and read). With `report`, shows each status on
/// stderr: a line redrawn in place on a terminal, one line per change otherwise.
pub async fn until_final(api: &Api, id: &str, report: bool) -> Result<(Value, Run), CliError> {
    let live = report && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_status = String::new();
    let mut delay = Duration::from_millis(100);
    loop {
        let answer = api.get(&format!("/runs/{}", encode(id))).await?;
        let run: Run = answers::parse(&answer)?;
        let status = run.status.clone();
        if live {
            eprint!(
                "\r\x1b[2Krun {id}: {status}  {:.1}s",
                started.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        } else if report && status != last_status {
            eprintln!("run {id}: {status}");
        }
        if run.is_final() {
            if live {
                eprintln!();
            }
            return Ok((answer, run));
        }
        last_status = status;
        tokio::time::sleep(delay).await;
        // A live line keeps ticking; without one, polling slows down to once a second.
        delay = if live {
            Duration::from_millis(200)
        } else {
            (delay * 2).min(Duration::from_secs(1))
        };
    }
}

/// `runs logs --follow`: prints the run's output as it comes (stdout to stdout, stderr to
/// stderr) until the run is final; then its error, if any.
pub async fn follow_logs(api: &Api, id: &str) -> Result<(), CliError> {
    let mut end = None;
    let mut bad_event = None;
    let mut attempt = 0;
    let ended = api
        .events(&format!("/runs/{}/events", encode(id)), |name, data| {
            match name {
                "log" => {
                    let log: LogEvent = match answers::parse(&data) {
                        Ok(log) => log,
                        Err(e) => {
                            bad_event = Some(e);
                            return false;
                        }
                    };
                    if attempt != 0 && log.attempt != attempt {
                        eprintln!("--- attempt {} ---", log.attempt);
                    }
                    attempt = log.attempt;
                    if log.stream == "stderr" {
                        eprint!("{}", log.text);
                        let _ = std::io::stderr().flush();
                    } else {
                        print!("{}", log.text);
                        let _ = std::io::stdout().flush();
                    }
                }
                "end" => {
                    match answers::parse::<Run>(&data) {
                        Ok(run) => end = Some(run),
                        Err(e) => bad_event = Some(e),
                    }
                    return false;
                }
                _ => {}
            }
            true
        })
        .await?;
    if let Some(e) = bad_event {
        return Err(e);
    }
    let Some(run) = end.filter(|_| ended) else {
        return Err(CliError(format!(
            "the event stream of run {id} ended before the run did; `runfleet runs logs {id}` shows its stored output"
        )));
    };
    if let Some(error) = run.error {
        eprintln!("error: {}", error.message);
    }
    Ok(())
}

/// `run --wait`: waits, prints the logs (stdout to stdout, stderr to stderr), the error
/// and the result, and returns the script's exit code as this process's (1 when it
/// failed without one, e.g. timed out).
pub async fn run_to_end(api: &Api, id: &str, output: Output) -> Result<ExitCode, CliError> {
    let (answer, run) = until_final(api, id, output == Output::Text).await?;
    let logs = api.get(&format!("/runs/{}/logs", encode(id))).await?;
    match output {
        Output::Json => render::json(&serde_json::json!({"run": answer, "logs": logs})),
        Output::Text => {
            let logs: Logs = answers::parse(&logs)?;
            print!("{}", logs.stdout);
            eprint!("{}", logs.stderr);
            if let Some(error) = &run.error {
                eprintln!("error: {}", error.message);
            }
            if let Some(result) = &run.result {
                println!("result:");
                render::json(result);
            }
        }
    }
    let code = match (run.status.as_str(), run.exit_code) {
        ("succeeded", _) => 0,
        (_, Some(c)) if c != 0 => c.clamp(1, 255) as u8,
        _ => 1,
    };
    Ok(ExitCode::from(code))
}
