//! Resource limits of a run's process (rlimits): CPU seconds, address space, open files,
//! processes. A task may set them; the consumer fills in its defaults and caps each at its
//! ceiling (`RUNFLEET_LIMITS__*`).

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Limits of one run; an absent field means "the consumer's default".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    /// CPU time in seconds (RLIMIT_CPU); past it the script gets SIGXCPU, then SIGKILL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<u64>,
    /// Address space in bytes (RLIMIT_AS); allocations beyond it fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Open file descriptors (RLIMIT_NOFILE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
    /// Processes and threads of the consumer's user (RLIMIT_NPROC; not enforced for root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
}

/// Smallest memory limit accepted: below it not even an interpreter starts.
pub const MIN_MEMORY_BYTES: u64 = 32 << 20;
/// Smallest open-files limit accepted (stdin, stdout, stderr and a few more).
pub const MIN_OPEN_FILES: u64 = 16;

impl RunLimits {
    /// Checks the values a client gave (`field` names the object, e.g. `limits`).
    pub fn check(&self, field: &str) -> Result<(), Error> {
        let checks = [
            ("cpu_seconds", self.cpu_seconds, 1),
            ("memory_bytes", self.memory_bytes, MIN_MEMORY_BYTES),
            ("open_files", self.open_files, MIN_OPEN_FILES),
            ("processes", self.processes, 1),
        ];
        for (name, value, min) in checks {
            if let Some(v) = value
                && v < min
            {
                return Err(Error::invalid(
                    "invalid_limits",
                    format!("{field}.{name}"),
                    format!(
                        "{field}.{name} is {v}; give at least {min}, or leave it out for the consumer's default"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// These limits, with `defaults` where unset, each capped at `ceiling`.
    pub fn effective(&self, defaults: &RunLimits, ceiling: &RunLimits) -> RunLimits {
        let pick =
            |own: Option<u64>, default: Option<u64>, max: Option<u64>| match (own.or(default), max)
            {
                (Some(v), Some(m)) => Some(v.min(m)),
                (None, Some(m)) => Some(m),
                (v, None) => v,
            };
        RunLimits {
            cpu_seconds: pick(self.cpu_seconds, defaults.cpu_seconds, ceiling.cpu_seconds),
            memory_bytes: pick(
                self.memory_bytes,
                defaults.memory_bytes,
                ceiling.memory_bytes,
            ),
            open_files: pick(self.open_files, defaults.open_files, ceiling.open_files),
            processes: pick(self.processes, defaults.processes, ceiling.processes),
        }
    }

    /// The limits as JSON (what runs and tasks store).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("limits serialize")
    }

    /// Limits stored as JSON (an unreadable value means none).
    pub fn from_json(value: &serde_json::Value) -> RunLimits {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_values_then_defaults_each_capped_at_the_ceiling() {
        let own = RunLimits {
            cpu_seconds: Some(100),
            memory_bytes: None,
            open_files: Some(64),
            processes: None,
        };
        let defaults = RunLimits {
            cpu_seconds: Some(10),
            memory_bytes: Some(1 << 30),
            open_files: None,
            processes: None,
        };
        let ceiling = RunLimits {
            cpu_seconds: Some(60),
            memory_bytes: Some(4 << 30),
            open_files: None,
            processes: Some(256),
        };
        assert_eq!(
            own.effective(&defaults, &ceiling),
            RunLimits {
                cpu_seconds: Some(60),
                memory_bytes: Some(1 << 30),
                open_files: Some(64),
                processes: Some(256),
            }
        );
        assert_eq!(
            RunLimits::default().effective(&RunLimits::default(), &RunLimits::default()),
            RunLimits::default()
        );
    }

    #[test]
    fn too_small_values_name_their_field() {
        let e = RunLimits {
            open_files: Some(3),
            ..RunLimits::default()
        }
        .check("limits")
        .unwrap_err();
        assert!(matches!(e, Error::Invalid { ref field, .. } if field == "limits.open_files"));
        assert!(RunLimits::default().check("limits").is_ok());
        let json = RunLimits {
            cpu_seconds: Some(5),
            ..RunLimits::default()
        }
        .to_json();
        assert_eq!(json, serde_json::json!({"cpu_seconds": 5}));
        assert_eq!(RunLimits::from_json(&json).cpu_seconds, Some(5));
    }
}
