//! `runfleet`: command-line client of the runfleet API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::{Map, Value, json};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register and list scripts.
    Scripts {
        #[command(subcommand)]
        command: ScriptsCommand,
    },
    /// Submit a run of SCRIPT.
    Run {
        /// Script name.
        script: String,
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
    /// Inspect runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Manage API tokens (admin).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
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

#[derive(Subcommand)]
enum ScriptsCommand {
    /// Register FILE as a new version (name from the file name).
    Push {
        /// Script file.
        file: PathBuf,
        /// Name to register under (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// A pip requirement line (repeatable).
        #[arg(long = "requirement", value_name = "REQ")]
        requirements: Vec<String>,
    },
    /// List scripts.
    List,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Show one run as JSON.
    Show {
        /// Run id.
        id: String,
    },
    /// Print a run's captured stdout and stderr.
    Logs {
        /// Run id.
        id: String,
    },
    /// List recent runs.
    List {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only this script.
        #[arg(long)]
        script: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// One line for the user: what failed and what to do.
struct CliError(String);

impl From<reqwest::Error> for CliError {
    fn from(e: reqwest::Error) -> Self {
        CliError(format!(
            "cannot reach the runfleet API: {e} (set --url or RUNFLEET_URL)"
        ))
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let resp = req.send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let err = &body["error"];
        let mut line = format!(
            "{} ({}): {}",
            err["code"].as_str().unwrap_or("error"),
            status.as_u16(),
            err["message"]
                .as_str()
                .unwrap_or("the API refused the request")
        );
        if let Some(field) = err["field"].as_str() {
            line.push_str(&format!(" [field: {field}]"));
        }
        Err(CliError(line))
    }

    async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }
}

fn parse_param(raw: &str) -> Result<(String, Value), CliError> {
    let (k, v) = raw
        .split_once('=')
        .ok_or_else(|| CliError(format!("--param '{raw}' must be KEY=VALUE")))?;
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

/// Percent-encodes everything but unreserved URL characters.
fn encode_query_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

async fn wait_for(api: &Api, id: &str) -> Result<Value, CliError> {
    let mut delay = Duration::from_millis(100);
    loop {
        let run = api.get(&format!("/runs/{id}")).await?;
        let status = run["status"].as_str().unwrap_or("");
        if matches!(
            status,
            "succeeded" | "failed" | "timed_out" | "cancelled" | "dead"
        ) {
            return Ok(run);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

async fn execute(cli: Cli) -> Result<ExitCode, CliError> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = &cli.token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| {
                CliError("RUNFLEET_TOKEN / --token holds characters a header cannot carry".into())
            })?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let api = Api {
        base: cli.url.trim_end_matches('/').to_string(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .default_headers(headers)
            .build()?,
    };
    match cli.command {
        Command::Scripts {
            command:
                ScriptsCommand::Push {
                    file,
                    name,
                    requirements,
                },
        } => {
            let content = std::fs::read_to_string(&file)
                .map_err(|e| CliError(format!("cannot read {}: {e}", file.display())))?;
            let name = name.unwrap_or_else(|| {
                file.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let v = api
                .post(
                    "/scripts",
                    &json!({"name": name, "content": content, "requirements": requirements}),
                )
                .await?;
            println!(
                "{} version {}",
                v["name"].as_str().unwrap_or(""),
                v["version"]
            );
        }
        Command::Scripts {
            command: ScriptsCommand::List,
        } => {
            let list = api.get("/scripts").await?;
            for s in list.as_array().into_iter().flatten() {
                println!(
                    "{}\tv{}\t{}",
                    s["name"].as_str().unwrap_or(""),
                    s["latest_version"],
                    s["language"].as_str().unwrap_or("")
                );
            }
        }
        Command::Run {
            script,
            params,
            params_json,
            queue,
            timeout,
            wait,
        } => {
            let mut parameters = match params_json {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| CliError(format!("cannot read {}: {e}", path.display())))?;
                    match serde_json::from_str::<Value>(&text) {
                        Ok(Value::Object(m)) => m,
                        _ => {
                            return Err(CliError(format!(
                                "{} must hold a JSON object",
                                path.display()
                            )));
                        }
                    }
                }
                None => Map::new(),
            };
            for raw in &params {
                let (k, v) = parse_param(raw)?;
                parameters.insert(k, v);
            }
            let mut body = json!({"script": script, "parameters": parameters});
            if let Some(q) = queue {
                body["queue"] = json!(q);
            }
            if let Some(t) = timeout {
                body["timeout_seconds"] = json!(t);
            }
            let run = api.post("/runs", &body).await?;
            let id = run["id"].as_str().unwrap_or_default().to_string();
            if !wait {
                println!("{id}");
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("run {id} queued; waiting");
            let run = wait_for(&api, &id).await?;
            let logs = api.get(&format!("/runs/{id}/logs")).await?;
            print!("{}", logs["stdout"].as_str().unwrap_or(""));
            eprint!("{}", logs["stderr"].as_str().unwrap_or(""));
            let status = run["status"].as_str().unwrap_or("");
            eprintln!("run {id}: {status}");
            if let Some(msg) = run["error"]["message"].as_str() {
                eprintln!("error: {msg}");
            }
            if !run["result"].is_null() {
                println!("result:");
                print_json(&run["result"]);
            }
            let code = match (status, run["exit_code"].as_i64()) {
                ("succeeded", _) => 0,
                (_, Some(c)) if c != 0 => c.clamp(1, 255) as u8,
                _ => 1,
            };
            return Ok(ExitCode::from(code));
        }
        Command::Runs {
            command: RunsCommand::Show { id },
        } => print_json(&api.get(&format!("/runs/{id}")).await?),
        Command::Runs {
            command: RunsCommand::Logs { id },
        } => {
            let logs = api.get(&format!("/runs/{id}/logs")).await?;
            print!("{}", logs["stdout"].as_str().unwrap_or(""));
            eprint!("{}", logs["stderr"].as_str().unwrap_or(""));
        }
        Command::Runs {
            command:
                RunsCommand::List {
                    status,
                    script,
                    limit,
                },
        } => {
            let mut query = format!("limit={limit}");
            for (key, value) in [("status", status), ("script", script)] {
                if let Some(v) = value {
                    query.push_str(&format!("&{key}={}", encode_query_value(&v)));
                }
            }
            let req = api.http.get(format!("{}/runs?{query}", api.base));
            let page = api.send(req).await?;
            for r in page["runs"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}",
                    r["id"].as_str().unwrap_or(""),
                    r["status"].as_str().unwrap_or(""),
                    r["script"].as_str().unwrap_or(""),
                    r["submitted_at"].as_str().unwrap_or("")
                );
            }
        }
        Command::Tokens {
            command: TokensCommand::Create { name, role },
        } => {
            let created = api
                .post("/tokens", &json!({"name": name, "role": role}))
                .await?;
            eprintln!(
                "token '{}' ({}) created; it is shown only now:",
                created["name"].as_str().unwrap_or(""),
                created["role"].as_str().unwrap_or("")
            );
            println!("{}", created["token"].as_str().unwrap_or(""));
        }
        Command::Tokens {
            command: TokensCommand::List,
        } => {
            for t in api.get("/tokens").await?.as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}",
                    t["id"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or(""),
                    t["role"].as_str().unwrap_or(""),
                    if t["revoked_at"].is_null() {
                        "active"
                    } else {
                        "revoked"
                    }
                );
            }
        }
        Command::Tokens {
            command: TokensCommand::Revoke { id },
        } => {
            let req = api.http.delete(format!("{}/tokens/{id}", api.base));
            let t = api.send(req).await?;
            println!("revoked {}", t["name"].as_str().unwrap_or(""));
        }
    }
    Ok(ExitCode::SUCCESS)
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
