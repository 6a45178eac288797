//! `runfleet`: the command-line client of the runfleet API.
//!
//! An HTTP client only: it imports nothing of the server, so building it compiles no
//! axum, Postgres or AMQP code. A command goes
//!
//! ```text
//! argv ──args::Cli (clap)──▶ commands::execute ──▶ commands::<group>::run
//!                                                    │  api::Api (reqwest, one CliError)
//!                                                    ▼
//!                                      render (text tables or --output json)
//!                                      wait (run --wait, runs logs --follow)
//! ```
//!
//! Every read command takes `--output json` (the API's JSON) for scripting; an error is
//! one line on stderr and exit code 2; `run --wait` exits with the script's exit code.
#![forbid(unsafe_code)]

pub mod answers;
pub mod api;
pub mod args;
mod commands;
pub mod input;
pub mod render;
pub mod wait;

pub use api::CliError;
pub use args::Cli;
pub use commands::execute;
