//! Cron schedules of tasks: `runfleet schedules list|create|pause|resume|trigger|delete`.

use serde_json::json;

use crate::answers::{Run, Schedule, or_dash};
use crate::api::{Api, CliError, encode};
use crate::args::SchedulesCommand;
use crate::render::{Output, table};

use super::read;

/// Runs one `runfleet schedules` command.
pub async fn run(api: &Api, output: Output, command: SchedulesCommand) -> Result<(), CliError> {
    let show = |s: Schedule| {
        println!(
            "{}  {}  {}  next {}{}",
            s.id,
            s.task,
            s.cron,
            or_dash(&s.next_fire_at),
            if s.paused { "  (paused)" } else { "" }
        )
    };
    match command {
        SchedulesCommand::List { task } => {
            let path = match task {
                Some(t) => format!("/schedules?task={}", encode(&t)),
                None => "/schedules".into(),
            };
            let list = api.get(&path).await?;
            read(output, &list, |schedules: Vec<Schedule>| {
                let table_rows: Vec<Vec<String>> = schedules
                    .into_iter()
                    .map(|s| {
                        let next = or_dash(&s.next_fire_at).to_string();
                        let last = or_dash(&s.last_fired_at).to_string();
                        let state = if s.paused { "paused" } else { "active" };
                        vec![s.id, s.task, s.cron, s.timezone, next, last, state.into()]
                    })
                    .collect();
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
            })?;
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
            read(output, &s, show)?;
        }
        SchedulesCommand::Pause { id } => {
            let s = api
                .post(&format!("/schedules/{}/pause", encode(&id)), &json!({}))
                .await?;
            read(output, &s, show)?;
        }
        SchedulesCommand::Resume { id } => {
            let s = api
                .post(&format!("/schedules/{}/resume", encode(&id)), &json!({}))
                .await?;
            read(output, &s, show)?;
        }
        SchedulesCommand::Trigger { id } => {
            let run = api
                .post(&format!("/schedules/{}/trigger", encode(&id)), &json!({}))
                .await?;
            read(output, &run, |r: Run| println!("{}", r.id))?;
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
