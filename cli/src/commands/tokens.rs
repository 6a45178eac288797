//! API tokens (admin): `runfleet tokens create|list|revoke`.

use serde_json::json;

use crate::answers::{CreatedToken, Token, or_dash};
use crate::api::{Api, CliError, encode};
use crate::args::TokensCommand;
use crate::render::{Output, table};

use super::read;

/// Runs one `runfleet tokens` command.
pub async fn run(api: &Api, output: Output, command: TokensCommand) -> Result<(), CliError> {
    match command {
        TokensCommand::Create { name, role } => {
            let created = api
                .post("/tokens", &json!({"name": name, "role": role}))
                .await?;
            read(output, &created, |c: CreatedToken| {
                eprintln!(
                    "token '{}' ({}) created; it is shown only now:",
                    c.name, c.role
                );
                println!("{}", c.token);
            })?;
        }
        TokensCommand::List => {
            let list = api.get("/tokens").await?;
            read(output, &list, |tokens: Vec<Token>| {
                let rows: Vec<Vec<String>> = tokens
                    .into_iter()
                    .map(|t| {
                        let state = if t.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        let last_used = or_dash(&t.last_used_at).to_string();
                        vec![t.id, t.name, t.role, last_used, state.into()]
                    })
                    .collect();
                table(&["ID", "NAME", "ROLE", "LAST USED", "STATE"], &rows)
            })?;
        }
        TokensCommand::Revoke { id } => {
            let t = api.delete(&format!("/tokens/{}", encode(&id))).await?;
            read(output, &t, |t: Token| println!("revoked {}", t.name))?;
        }
    }
    Ok(())
}
