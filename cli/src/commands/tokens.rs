//! API tokens (admin): `runfleet tokens create|list|revoke`.

use serde_json::json;

use crate::api::{Api, CliError, encode};
use crate::args::TokensCommand;
use crate::render::{Output, rows, table, text};

use super::read;

/// Runs one `runfleet tokens` command.
pub async fn run(api: &Api, output: Output, command: TokensCommand) -> Result<(), CliError> {
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
