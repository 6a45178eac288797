//! The command line: every command, argument and flag, as clap reads them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::render::Output;

/// Command-line client of the runfleet API.
#[derive(Parser)]
#[command(version)]
pub struct Cli {
    /// API base URL.
    #[arg(
        long,
        env = "RUNFLEET_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// API token (sent as `Authorization: Bearer`).
    #[arg(long, env = "RUNFLEET_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// How read commands print: aligned text, or the API's JSON.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Subcommand)]
pub enum Command {
    /// Register and inspect scripts.
    Scripts {
        /// The scripts command.
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
        /// The runs command.
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Named run templates.
    Tasks {
        /// The tasks command.
        #[command(subcommand)]
        command: TasksCommand,
    },
    /// Cron schedules of tasks.
    Schedules {
        /// The schedules command.
        #[command(subcommand)]
        command: SchedulesCommand,
    },
    /// Manage API tokens (admin).
    Tokens {
        /// The tokens command.
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Print a shell completion script, e.g. `runfleet completions bash > /etc/bash_completion.d/runfleet`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// `runfleet scripts ...`.
#[derive(Subcommand)]
pub enum ScriptsCommand {
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

/// `runfleet runs ...`.
#[derive(Subcommand)]
pub enum RunsCommand {
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

/// `runfleet tasks ...`.
#[derive(Subcommand)]
pub enum TasksCommand {
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

/// `runfleet schedules ...`.
#[derive(Subcommand)]
pub enum SchedulesCommand {
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

/// `runfleet tokens ...`.
#[derive(Subcommand)]
pub enum TokensCommand {
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
