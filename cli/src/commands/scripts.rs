//! Register and inspect scripts: `runfleet scripts push|list|show`.

use serde_json::{Value, json};

use crate::api::{Api, CliError, encode};
use crate::args::ScriptsCommand;
use crate::input::{read_file, requirement_lines};
use crate::render::{self, Output, rows, table, text};

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
                    println!("{} version {}", text(&v["name"]), v["version"]);
                }
                pushed.push(v);
            }
            if output == Output::Json {
                render::json(&Value::Array(pushed));
            }
        }
        ScriptsCommand::List => {
            let list = api.get("/scripts").await?;
            read(output, &list, |l| {
                table(
                    &["NAME", "VERSION", "LANGUAGE", "UPDATED"],
                    &rows(l, &["name", "latest_version", "language", "updated_at"]),
                )
            });
        }
        ScriptsCommand::Show { name } => {
            let detail = api.get(&format!("/scripts/{}", encode(&name))).await?;
            read(output, &detail, |d| {
                let latest = &d["latest"];
                println!(
                    "{} version {} ({}, sha256 {})",
                    text(&latest["name"]),
                    latest["version"],
                    text(&latest["language"]),
                    text(&latest["sha256"])
                );
                if let Some(reqs) = latest["requirements"].as_array().filter(|r| !r.is_empty()) {
                    let reqs: Vec<String> = reqs.iter().map(text).collect();
                    println!("requirements: {}", reqs.join(", "));
                }
                println!();
                table(
                    &["VERSION", "SHA256", "CREATED"],
                    &rows(&d["versions"], &["version", "sha256", "created_at"]),
                );
                println!();
                print!("{}", text(&latest["content"]));
            });
        }
    }
    Ok(())
}
