//! Register and inspect scripts: `runfleet scripts push|list|show`.

use serde_json::{Value, json};

use crate::answers::{self, ScriptDetail, ScriptSummary, ScriptVersion};
use crate::api::{Api, CliError, encode};
use crate::args::ScriptsCommand;
use crate::input::{read_file, requirement_lines};
use crate::render::{self, Output, table};

use super::read;

/// Runs one `runfleet scripts` command.
pub async fn run(api: &Api, output: Output, command: ScriptsCommand) -> Result<(), CliError> {
    match command {
        ScriptsCommand::Push {
            files,
            name,
            requirement,
            requirements,
        } => {
            if name.is_some() && files.len() > 1 {
                return Err(CliError("--name needs exactly one FILE".into()));
            }
            let mut lines = requirement;
            if let Some(path) = requirements {
                lines.extend(requirement_lines(&read_file(&path)?));
            }
            let mut pushed = Vec::new();
            for file in &files {
                let content = read_file(file)?;
                let name = name.clone().unwrap_or_else(|| {
                    file.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
                let mut body = json!({"name": name, "content": content});
                if !lines.is_empty() {
                    body["requirements"] = json!(lines);
                }
                let v = api.post("/scripts", &body).await?;
                if output == Output::Text {
                    let pushed: ScriptVersion = answers::parse(&v)?;
                    println!("{} version {}", pushed.name, pushed.version);
                }
                pushed.push(v);
            }
            if output == Output::Json {
                render::json(&Value::Array(pushed));
            }
        }
        ScriptsCommand::List => {
            let list = api.get("/scripts").await?;
            read(output, &list, |scripts: Vec<ScriptSummary>| {
                let rows: Vec<Vec<String>> = scripts
                    .into_iter()
                    .map(|s| {
                        vec![
                            s.name,
                            s.latest_version.to_string(),
                            s.language,
                            s.updated_at,
                        ]
                    })
                    .collect();
                table(&["NAME", "VERSION", "LANGUAGE", "UPDATED"], &rows)
            })?;
        }
        ScriptsCommand::Show { name } => {
            let detail = api.get(&format!("/scripts/{}", encode(&name))).await?;
            read(output, &detail, |d: ScriptDetail| {
                let latest = d.latest;
                println!(
                    "{} version {} ({}, sha256 {})",
                    latest.name, latest.version, latest.language, latest.sha256
                );
                if !latest.requirements.is_empty() {
                    println!("requirements: {}", latest.requirements.join(", "));
                }
                println!();
                let rows: Vec<Vec<String>> = d
                    .versions
                    .into_iter()
                    .map(|v| vec![v.version.to_string(), v.sha256, v.created_at])
                    .collect();
                table(&["VERSION", "SHA256", "CREATED"], &rows);
                println!();
                print!("{}", latest.content);
            })?;
        }
    }
    Ok(())
}
