//! Cron schedules of tasks: `runfleet schedules list|create|pause|resume|trigger|delete`.

use serde_json::{Value, json};

use crate::api::{Api, CliError, encode};
use crate::args::SchedulesCommand;
use crate::render::{Output, rows, table, text};

use super::read;

/// Runs one `runfleet schedules` command.
pub async fn run(api: &Api, output: Output, command: SchedulesCommand) -> Result<(), CliError> {
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
