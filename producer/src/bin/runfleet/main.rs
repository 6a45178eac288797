//! `runfleet`: command-line client of the runfleet API.
//!
//! Every read command takes `--output json` (the API's JSON) for scripting; an error is
//! one line on stderr and exit code 2; `run --wait` exits with the script's exit code.

mod api;
mod render;
mod wait;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use serde_json::{Map, Value, json};

use api::{Api, CliError, encode};
use render::{Output, rows, table, text};

/// Command-line client of the runfleet API.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// API base URL.
    #[arg(
        long,
        env = "RUNFLEET_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// API token (sent as `Authorization: Bearer`).
    #[arg(long, env = "RUNFLEET_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// How read commands print: aligned text, or the API's JSON.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register and inspect scripts.
    Scripts {
        #[command(subcommand)]
        command: ScriptsCommand,
    },
    /// Submit a run of SCRIPT, or of a task with --task.
    Run {
        /// Script name (or use --task).
        #[arg(required_unless_present = "task", conflicts_with = "task")]
        script: Option<String>,
        /// Run this task (its script and defaults).
        #[arg(long)]
        task: Option<String>,
        /// A parameter as key=value (value read as JSON when it parses, else as text).
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// A JSON object file of parameters (--param wins on the same key).
        #[arg(long, value_name = "FILE")]
        params_json: Option<PathBuf>,
        /// Worker queue.
        #[arg(long)]
        queue: Option<String>,
        /// Seconds before the script is killed.
        #[arg(long)]
        timeout: Option<u64>,
        /// Wait for the run to finish, print its logs and result, exit with its exit code.
        #[arg(long)]
        wait: bool,
    },
    /// Inspect and act on runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Named run templates.
    Tasks {
        #[command(subcommand)]
        command: TasksCommand,
    },
    /// Cron schedules of tasks.
    Schedules {
        #[command(subcommand)]
        command: SchedulesCommand,
    },
    /// Manage API tokens (admin).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Print a shell completion script, e.g. `runfleet completions bash > /etc/bash_completion.d/runfleet`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum ScriptsCommand {
    /// Register each FILE as a new version (name from the file name; a Python script's
    /// requirements may come from its PEP 723 `# /// script` block).
    Push {
        /// Script files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Name to register under (one file only; default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// A pip requirement line (repeatable).
        #[arg(long = "requirement", value_name = "REQ")]
        requirement: Vec<String>,
        /// A requirements.txt file (blank lines and comments skipped).
        #[arg(long, value_name = "FILE")]
        requirements: Option<PathBuf>,
    },
    /// List scripts.
    List,
    /// A script's latest version and its version history.
    Show {
        /// Script name.
        name: String,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List recent runs, newest first.
    List {
        /// Only this status (queued, running, succeeded, failed, ...).
        #[arg(long)]
        status: Option<String>,
        /// Only this script.
        #[arg(long)]
        script: Option<String>,
        /// Only runs submitted since: an RFC 3339 time, or an age like 30m, 2h, 1d.
        #[arg(long)]
        since: Option<String>,
        /// How many at most.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// One run.
    Show {
        /// Run id.
        id: String,
    },
    /// A run's captured stdout (to stdout) and stderr (to stderr).
    Logs {
        /// Run id.
        id: String,
        /// Print the output as the script prints it, until the run is final (with
        /// `--output json`: wait, then print the stored logs).
        #[arg(long)]
        follow: bool,
    },
    /// Cancel a queued or running run.
    Cancel {
        /// Run id.
        id: String,
    },
    /// Queue a final run again as its next attempt.
    Retry {
        /// Run id.
        id: String,
    },
}

#[derive(Subcommand)]
enum TasksCommand {
    /// List tasks.
    List,
    /// One task.
    Show {
        /// Task name.
        name: String,
    },
    /// Create a task.
    Create {
        /// Task name.
        name: String,
        /// Script it runs.
        #[arg(long)]
        script: String,
        /// A default parameter as key=value.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Worker queue.
        #[arg(long)]
        queue: Option<String>,
        /// Seconds before the script is killed.
        #[arg(long)]
        timeout: Option<u64>,
        /// Attempts in all (1 = no retries).
        #[arg(long)]
        max_attempts: Option<u32>,
    },
    /// Delete a task (refused while schedules use it).
    Delete {
        /// Task name.
        name: String,
    },
}

#[derive(Subcommand)]
enum SchedulesCommand {
    /// List schedules with their next fire times.
    List {
        /// Only the schedules of this task.
        #[arg(long)]
        task: Option<String>,
    },
    /// Create a schedule of TASK.
    Create {
        /// Task to run.
        task: String,
        /// Cron expression (5 or 6 fields, or @hourly, @daily, ...).
        #[arg(long)]
        cron: String,
        /// IANA time zone the cron expression is read in (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
    },
    /// Stop firing a schedule.
    Pause {
        /// Schedule id.
        id: String,
    },
    /// Fire a paused schedule again.
    Resume {
        /// Schedule id.
        id: String,
    },
    /// Make a run of the schedule now.
    Trigger {
        /// Schedule id.
        id: String,
    },
    /// Delete a schedule.
    Delete {
        /// Schedule id.
        id: String,
    },
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Create a token and print it (shown only once).
    Create {
        /// Unique name, e.g. ci-deploy.
        #[arg(long)]
        name: String,
        /// viewer, operator or admin.
        #[arg(long, value_parser = ["viewer", "operator", "admin"])]
        role: String,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id.
        id: String,
    },
}

fn parse_param(raw: &str) -> Result<(String, Value), CliError> {
    let (k, v) = raw
        .split_once('=')
        .ok_or_else(|| CliError(format!("--param '{raw}' must be KEY=VALUE")))?;
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

fn read_file(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError(format!("cannot read {}: {e}", path.display())))
}

/// The parameters of `--params-json FILE` and `--param k=v` (the latter win).
fn parameters(
    params: &[String],
    params_json: Option<&Path>,
) -> Result<Map<String, Value>, CliError> {
    let mut parameters = match params_json {
        Some(path) => match serde_json::from_str::<Value>(&read_file(path)?) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(CliError(format!(
                    "{} must hold a JSON object of parameters",
                    path.display()
                )));
            }
        },
        None => Map::new(),
    };
    for raw in params {
        let (k, v) = parse_param(raw)?;
        parameters.insert(k, v);
    }
    Ok(parameters)
}

/// `--since`: an RFC 3339 time, or an age (`90s`, `30m`, `2h`, `1d`) before now.
fn since(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, CliError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let bad = || {
        CliError(format!(
            "--since '{raw}' must be an RFC 3339 time (2026-11-24T08:00:00Z) or an age like 30m, 2h, 1d"
        ))
    };
    let (number, unit) = raw.split_at(raw.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(bad()),
    };
    Ok(chrono::Utc::now() - chrono::Duration::seconds(seconds))
}

/// Requirement lines of a requirements.txt (comments and blank lines skipped).
fn requirement_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Prints `v` as JSON, or as text with `show`.
fn read(output: Output, v: &Value, show: impl FnOnce(&Value)) {
    match output {
        Output::Json => render::json(v),
        Output::Text => show(v),
    }
}

/// Prints one object as `key: value` lines.
fn fields(v: &Value) {
    if let Some(map) = v.as_object() {
        for (k, value) in map {
            println!("{k}: {}", text(value));
        }
    }
}

async fn execute(cli: Cli) -> Result<ExitCode, CliError> {
    let api = Api::new(&cli.url, cli.token.as_deref())?;
    let output = cli.output;
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "runfleet",
                &mut std::io::stdout(),
            );
        }
        Command::Scripts { command } => scripts(&api, output, command).await?,
        Command::Run {
            script,
            task,
            params,
            params_json,
            queue,
            timeout,
            wait,
        } => {
            let mut body = json!({"parameters": parameters(&params, params_json.as_deref())?});
            match (script, task) {
                (Some(script), _) => body["script"] = json!(script),
                (None, Some(task)) => body["task"] = json!(task),
                (None, None) => unreachable!("clap requires SCRIPT or --task"),
            }
            if let Some(q) = queue {
                body["queue"] = json!(q);
            }
            if let Some(t) = timeout {
                body["timeout_seconds"] = json!(t);
            }
            let run = api.post("/runs", &body).await?;
            let id = text(&run["id"]);
            if !wait {
                read(output, &run, |_| println!("{id}"));
                return Ok(ExitCode::SUCCESS);
            }
            return wait::run_to_end(&api, &id, output).await;
        }
        Command::Runs { command } => runs(&api, output, command).await?,
        Command::Tasks { command } => tasks(&api, output, command).await?,
        Command::Schedules { command } => schedules(&api, output, command).await?,
        Command::Tokens { command } => tokens(&api, output, command).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn scripts(api: &Api, output: Output, command: ScriptsCommand) -> Result<(), CliError> {
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

async fn runs(api: &Api, output: Output, command: RunsCommand) -> Result<(), CliError> {
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

async fn tasks(api: &Api, output: Output, command: TasksCommand) -> Result<(), CliError> {
    match command {
        TasksCommand::List => {
            let list = api.get("/tasks").await?;
            read(output, &list, |l| {
                table(
                    &["NAME", "SCRIPT", "QUEUE", "TIMEOUT", "ATTEMPTS"],
                    &rows(
                        l,
                        &["name", "script", "queue", "timeout_seconds", "max_attempts"],
                    ),
                )
            });
        }
        TasksCommand::Show { name } => {
            let task = api.get(&format!("/tasks/{}", encode(&name))).await?;
            read(output, &task, fields);
        }
        TasksCommand::Create {
            name,
            script,
            params,
            queue,
            timeout,
            max_attempts,
        } => {
            let mut body = json!({
                "name": name,
                "script": script,
                "parameters": parameters(&params, None)?,
            });
            if let Some(q) = queue {
                body["queue"] = json!(q);
            }
            if let Some(t) = timeout {
                body["timeout_seconds"] = json!(t);
            }
            if let Some(m) = max_attempts {
                body["max_attempts"] = json!(m);
            }
            let task = api.post("/tasks", &body).await?;
            read(output, &task, |t| {
                println!("task {} created", text(&t["name"]))
            });
        }
        TasksCommand::Delete { name } => {
            api.delete(&format!("/tasks/{}", encode(&name))).await?;
            if output == Output::Text {
                println!("task {name} deleted");
            }
        }
    }
    Ok(())
}

async fn schedules(api: &Api, output: Output, command: SchedulesCommand) -> Result<(), CliError> {
    let show = |s: &Value| {
        println!(
            "{}  {}  {}  next {}{}",
            text(&s["id"]),
            text(&s["task"]),
            text(&s["cron"]),
            text(&s["next_fire_at"]),
            if s["paused"] == json!(true) {
                "  (paused)"
            } else {
                ""
            }
        )
    };
    match command {
        SchedulesCommand::List { task } => {
            let path = match task {
                Some(t) => format!("/schedules?task={}", encode(&t)),
                None => "/schedules".into(),
            };
            let list = api.get(&path).await?;
            read(output, &list, |l| {
                let mut table_rows = rows(
                    l,
                    &[
                        "id",
                        "task",
                        "cron",
                        "timezone",
                        "next_fire_at",
                        "last_fired_at",
                    ],
                );
                for (row, s) in table_rows
                    .iter_mut()
                    .zip(l.as_array().into_iter().flatten())
                {
                    row.push(
                        if s["paused"] == json!(true) {
                            "paused"
                        } else {
                            "active"
                        }
                        .into(),
                    );
                }
                table(
                    &[
                        "ID",
                        "TASK",
                        "CRON",
                        "TIMEZONE",
                        "NEXT FIRE",
                        "LAST FIRED",
                        "STATE",
                    ],
                    &table_rows,
                )
            });
        }
        SchedulesCommand::Create {
            task,
            cron,
            timezone,
            paused,
        } => {
            let mut body = json!({"task": task, "cron": cron, "paused": paused});
            if let Some(tz) = timezone {
                body["timezone"] = json!(tz);
            }
            let s = api.post("/schedules", &body).await?;
            read(output, &s, show);
        }
        SchedulesCommand::Pause { id } => {
            let s = api
                .post(&format!("/schedules/{}/pause", encode(&id)), &json!({}))
                .await?;
            read(output, &s, show);
        }
        SchedulesCommand::Resume { id } => {
            let s = api
                .post(&format!("/schedules/{}/resume", encode(&id)), &json!({}))
                .await?;
            read(output, &s, show);
        }
        SchedulesCommand::Trigger { id } => {
            let run = api
                .post(&format!("/schedules/{}/trigger", encode(&id)), &json!({}))
                .await?;
            read(output, &run, |r| println!("{}", text(&r["id"])));
        }
        SchedulesCommand::Delete { id } => {
            api.delete(&format!("/schedules/{}", encode(&id))).await?;
            if output == Output::Text {
                println!("schedule {id} deleted");
            }
        }
    }
    Ok(())
}

async fn tokens(api: &Api, output: Output, command: TokensCommand) -> Result<(), CliError> {
    match command {
        TokensCommand::Create { name, role } => {
            let created = api
                .post("/tokens", &json!({"name": name, "role": role}))
                .await?;
            read(output, &created, |c| {
                eprintln!(
                    "token '{}' ({}) created; it is shown only now:",
                    text(&c["name"]),
                    text(&c["role"])
                );
                println!("{}", text(&c["token"]));
            });
        }
        TokensCommand::List => {
            let list = api.get("/tokens").await?;
            read(output, &list, |l| {
                let mut table_rows = rows(l, &["id", "name", "role", "last_used_at"]);
                for (row, t) in table_rows
                    .iter_mut()
                    .zip(l.as_array().into_iter().flatten())
                {
                    row.push(
                        if t["revoked_at"].is_null() {
                            "active"
                        } else {
                            "revoked"
                        }
                        .into(),
                    );
                }
                table(&["ID", "NAME", "ROLE", "LAST USED", "STATE"], &table_rows)
            });
        }
        TokensCommand::Revoke { id } => {
            let t = api.delete(&format!("/tokens/{}", encode(&id))).await?;
            read(output, &t, |t| println!("revoked {}", text(&t["name"])));
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match execute(Cli::parse()).await {
        Ok(code) => code,
        Err(CliError(line)) => {
            eprintln!("runfleet: {line}");
            ExitCode::from(2)
        }
    }
}
