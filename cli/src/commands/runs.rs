//! Inspect and act on runs: `runfleet runs list|show|logs|cancel|retry`.

use serde_json::{Value, json};

use crate::api::{Api, CliError, encode};
use crate::args::RunsCommand;
use crate::input::since;
use crate::render::{Output, rows, table, text};
use crate::wait;

use super::{fields, read};

/// Runs one `runfleet runs` command.
pub async fn run(api: &Api, output: Output, command: RunsCommand) -> Result<(), CliError> {
    match command {
        RunsCommand::List {
            status,
            script,
            since: since_raw,
            limit,
        } => {
            let since = since_raw.as_deref().map(since).transpose()?;
            let mut base = String::new();
            for (key, value) in [("status", &status), ("script", &script)] {
                if let Some(v) = value {
                    base.push_str(&format!("&{key}={}", encode(v)));
                }
            }
            // Pages newest first until `limit` runs or one older than --since.
            let mut found = Vec::new();
            let mut cursor: Option<String> = None;
            'pages: loop {
                let page_size = (limit as usize - found.len()).clamp(1, 200);
                let mut query = format!("limit={page_size}{base}");
                if let Some(c) = &cursor {
                    query.push_str(&format!("&cursor={c}"));
                }
                let page = api.get(&format!("/runs?{query}")).await?;
                for run in page["runs"].as_array().into_iter().flatten() {
                    let submitted = run["submitted_at"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                    if let (Some(since), Some(at)) = (since, submitted)
                        && at < since
                    {
                        break 'pages;
                    }
                    found.push(run.clone());
                    if found.len() >= limit as usize {
                        break 'pages;
                    }
                }
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_string()),
                    None => break,
                }
            }
            let list = Value::Array(found);
            read(output, &list, |l| {
                table(
                    &["ID", "STATUS", "SCRIPT", "ATTEMPT", "SUBMITTED"],
                    &rows(l, &["id", "status", "script", "attempt", "submitted_at"]),
                )
            });
        }
        RunsCommand::Show { id } => {
            let run = api.get(&format!("/runs/{}", encode(&id))).await?;
            read(output, &run, fields);
        }
        RunsCommand::Logs { id, follow } => {
            if follow && output == Output::Text {
                return wait::follow_logs(api, &id).await;
            }
            if follow {
                wait::until_final(api, &id, false).await?;
            }
            let logs = api.get(&format!("/runs/{}/logs", encode(&id))).await?;
            read(output, &logs, |l| {
                print!("{}", l["stdout"].as_str().unwrap_or(""));
                eprint!("{}", l["stderr"].as_str().unwrap_or(""));
            });
        }
        RunsCommand::Cancel { id } => {
            let run = api
                .post(&format!("/runs/{}/cancel", encode(&id)), &json!({}))
                .await?;
            read(output, &run, |r| {
                println!("{}: {}", text(&r["id"]), text(&r["status"]))
            });
        }
        RunsCommand::Retry { id } => {
            let run = api
                .post(&format!("/runs/{}/retry", encode(&id)), &json!({}))
                .await?;
            read(output, &run, |r| {
                println!(
                    "{}: {} (attempt {})",
                    text(&r["id"]),
                    text(&r["status"]),
                    r["attempt"]
                )
            });
        }
    }
    Ok(())
}
