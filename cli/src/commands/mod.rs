//! One module per command group; `execute` dispatches a parsed command line to them. `run`
//! (submit, and with `--wait` follow to the end) lives here, being one command.

mod runs;
mod schedules;
mod scripts;
mod tasks;
mod tokens;

use std::process::ExitCode;

use clap::CommandFactory;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::answers;
use crate::api::{Api, CliError};
use crate::args::{Cli, Command};
use crate::input::parameters;
use crate::render::{self, Output, text};
use crate::wait;

/// Runs the command `cli` names; the exit code is the script's for `run --wait`.
pub async fn execute(cli: Cli) -> Result<ExitCode, CliError> {
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
        Command::Scripts { command } => scripts::run(&api, output, command).await?,
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
            let answer = api.post("/runs", &body).await?;
            let run: answers::Run = answers::parse(&answer)?;
            if !wait {
                read(output, &answer, |_: Value| println!("{}", run.id))?;
                return Ok(ExitCode::SUCCESS);
            }
            return wait::run_to_end(&api, &run.id, output).await;
        }
        Command::Runs { command } => runs::run(&api, output, command).await?,
        Command::Tasks { command } => tasks::run(&api, output, command).await?,
        Command::Schedules { command } => schedules::run(&api, output, command).await?,
        Command::Tokens { command } => tokens::run(&api, output, command).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the answer `v` as JSON, or read as `T` (see [`answers`]) as text with `show`.
pub fn read<T: DeserializeOwned>(
    output: Output,
    v: &Value,
    show: impl FnOnce(T),
) -> Result<(), CliError> {
    match output {
        Output::Json => render::json(v),
        Output::Text => show(answers::parse(v)?),
    }
    Ok(())
}

/// Prints one object as `key: value` lines (every field the API sent).
pub fn fields(v: Value) {
    if let Some(map) = v.as_object() {
        for (k, value) in map {
            println!("{k}: {}", text(value));
        }
    }
}
