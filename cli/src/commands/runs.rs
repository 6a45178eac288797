//! Inspect and act on runs: `runfleet runs list|show|logs|cancel|retry`.

use serde_json::{Value, json};

use crate::answers::{self, Logs, Run, RunPage};
use crate::api::{Api, CliError, encode};
use crate::args::RunsCommand;
use crate::input::since;
use crate::render::{Output, table};
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
                let page: RunPage = answers::parse(&api.get(&format!("/runs?{query}")).await?)?;
                for run in page.runs {
                    let listed: Run = answers::parse(&run)?;
                    let submitted = chrono::DateTime::parse_from_rfc3339(&listed.submitted_at).ok();
                    if let (Some(since), Some(at)) = (since, submitted)
                        && at < since
                    {
                        break 'pages;
                    }
                    found.push(run);
                    if found.len() >= limit as usize {
                        break 'pages;
                    }
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let list = Value::Array(found);
            read(output, &list, |runs: Vec<Run>| {
                let rows: Vec<Vec<String>> = runs
                    .into_iter()
                    .map(|r| {
                        vec![
                            r.id,
                            r.status,
                            r.script,
                            r.attempt.to_string(),
                            r.submitted_at,
                        ]
                    })
                    .collect();
                table(&["ID", "STATUS", "SCRIPT", "ATTEMPT", "SUBMITTED"], &rows)
            })?;
        }
        RunsCommand::Show { id } => {
            let run = api.get(&format!("/runs/{}", encode(&id))).await?;
            read(output, &run, fields)?;
        }
        RunsCommand::Logs { id, follow } => {
            if follow && output == Output::Text {
                return wait::follow_logs(api, &id).await;
            }
            if follow {
                wait::until_final(api, &id, false).await?;
            }
            let logs = api.get(&format!("/runs/{}/logs", encode(&id))).await?;
            read(output, &logs, |l: Logs| {
                print!("{}", l.stdout);
                eprint!("{}", l.stderr);
            })?;
        }
        RunsCommand::Cancel { id } => {
            let run = api
                .post(&format!("/runs/{}/cancel", encode(&id)), &json!({}))
                .await?;
            read(output, &run, |r: Run| println!("{}: {}", r.id, r.status))?;
        }
        RunsCommand::Retry { id } => {
            let run = api
                .post(&format!("/runs/{}/retry", encode(&id)), &json!({}))
                .await?;
            read(output, &run, |r: Run| {
                println!("{}: {} (attempt {})", r.id, r.status, r.attempt)
            })?;
        }
    }
    Ok(())
}
