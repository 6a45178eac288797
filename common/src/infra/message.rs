//! The run message that travels from producer (or scheduler) to consumer.
//!
//! It carries only the run's identity: Postgres holds the run itself, so a message can be
//! published again (outbox sweep) or delivered twice without carrying stale state.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// "Run attempt `attempt` of run `run_id`."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunMessage {
    /// The run's id (`runs.id`).
    pub run_id: Uuid,
    /// The attempt this message asks for; a message for another attempt is stale.
    pub attempt: i32,
}

impl RunMessage {
    /// The JSON body.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("RunMessage serializes")
    }

    /// Parses a body; `Err` means the message is malformed and must be dead-lettered.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let m = RunMessage {
            run_id: Uuid::now_v7(),
            attempt: 2,
        };
        assert_eq!(RunMessage::parse(&m.to_bytes()).unwrap(), m);
        assert!(RunMessage::parse(b"not json").is_err());
        assert!(RunMessage::parse(br#"{"run_id":"x","attempt":1}"#).is_err());
        assert!(RunMessage::parse(br#"{"attempt":1}"#).is_err());
    }
}
