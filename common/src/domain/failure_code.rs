//! Why a run did not succeed, as the machine-readable `error.code` the API shows: every
//! code is declared here once, so a new way to fail is added (and documented) in one place
//! and a misspelt code is a build error rather than a value no client knows.

use std::fmt;

/// The `error.code` of a run that failed, timed out, was cancelled or went dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureCode {
    /// The script exited with a non-zero status or was killed by a signal (a limit, say).
    ExitNonzero,
    /// The script ran past its timeout and its process group was killed.
    TimedOut,
    /// Cancelled by request, before it started or while it ran.
    Cancelled,
    /// The script exited 0 but its result file was not valid JSON or was too large.
    InvalidResult,
    /// The interpreter could not be started.
    SpawnFailed,
    /// The run's work directory or files could not be set up.
    WorkdirFailed,
    /// The run's language is one this consumer cannot run.
    UnsupportedLanguage,
    /// A secret the run needs is gone, or the consumer has no key to read it.
    SecretUnavailable,
    /// The run's requirements could not be parsed.
    InvalidRequirements,
    /// Auto-install is off and the run's requirement set is not in the venv cache.
    DependencyNotCached,
    /// Installing the run's requirements failed.
    DependencyInstallFailed,
    /// The venv cache directory could not be used.
    VenvCacheError,
    /// Its consumer died while running it `max_reclaims` times (a poison run?).
    ConsumerLost,
    /// RabbitMQ dead-lettered its message (delivered too often without an ack).
    DeadLettered,
}

impl FailureCode {
    /// Every code, in declaration order.
    pub const ALL: [FailureCode; 14] = [
        FailureCode::ExitNonzero,
        FailureCode::TimedOut,
        FailureCode::Cancelled,
        FailureCode::InvalidResult,
        FailureCode::SpawnFailed,
        FailureCode::WorkdirFailed,
        FailureCode::UnsupportedLanguage,
        FailureCode::SecretUnavailable,
        FailureCode::InvalidRequirements,
        FailureCode::DependencyNotCached,
        FailureCode::DependencyInstallFailed,
        FailureCode::VenvCacheError,
        FailureCode::ConsumerLost,
        FailureCode::DeadLettered,
    ];

    /// The code as stored in `runs.error_code` and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::ExitNonzero => "exit_nonzero",
            FailureCode::TimedOut => "timed_out",
            FailureCode::Cancelled => "cancelled",
            FailureCode::InvalidResult => "invalid_result",
            FailureCode::SpawnFailed => "spawn_failed",
            FailureCode::WorkdirFailed => "workdir_failed",
            FailureCode::UnsupportedLanguage => "unsupported_language",
            FailureCode::SecretUnavailable => "secret_unavailable",
            FailureCode::InvalidRequirements => "invalid_requirements",
            FailureCode::DependencyNotCached => "dependency_not_cached",
            FailureCode::DependencyInstallFailed => "dependency_install_failed",
            FailureCode::VenvCacheError => "venv_cache_error",
            FailureCode::ConsumerLost => "consumer_lost",
            FailureCode::DeadLettered => "dead_lettered",
        }
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_snake_case_words() {
        let mut seen = std::collections::HashSet::new();
        for code in FailureCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} is used twice");
            assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s} is not snake_case"
            );
        }
    }
}
