//! Test harness: a whole runfleet fleet (producer + consumer) in-process against the real
//! Postgres and RabbitMQ on 127.0.0.1, isolated per test by its own database, AMQP name
//! prefix and work directory, and removed again when the [`Fleet`] is dropped (also when
//! the test fails).

mod fleet;
mod process;
mod proxy;
pub mod pyindex;
mod services;

pub use fleet::*;
pub use process::*;
pub use proxy::*;
pub use services::*;
