//! Named run templates: `runfleet tasks list|show|create|delete`.

use serde_json::json;

use crate::answers::Task;
use crate::api::{Api, CliError, encode};
use crate::args::TasksCommand;
use crate::input::parameters;
use crate::render::{Output, table};

use super::{fields, read};

/// Runs one `runfleet tasks` command.
pub async fn run(api: &Api, output: Output, command: TasksCommand) -> Result<(), CliError> {
    match command {
        TasksCommand::List => {
            let list = api.get("/tasks").await?;
            read(output, &list, |tasks: Vec<Task>| {
                let rows: Vec<Vec<String>> = tasks
                    .into_iter()
                    .map(|t| {
                        let (timeout, attempts) = (t.timeout_seconds, t.max_attempts);
                        vec![
                            t.name,
                            t.script,
                            t.queue,
                            timeout.to_string(),
                            attempts.to_string(),
                        ]
                    })
                    .collect();
                table(&["NAME", "SCRIPT", "QUEUE", "TIMEOUT", "ATTEMPTS"], &rows)
            })?;
        }
        TasksCommand::Show { name } => {
            let task = api.get(&format!("/tasks/{}", encode(&name))).await?;
            read(output, &task, fields)?;
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
            read(output, &task, |t: Task| println!("task {} created", t.name))?;
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
