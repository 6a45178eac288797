//! The settings a client may give a run, declared once: [`RunSettings`] (what `NewRun` and
//! a task's input carry) and [`with_run_settings!`](crate::with_run_settings) (the same
//! fields, with the same names and docs, in each API body that describes a run).
//!
//! Adding a run setting: add it to `RunSettings`, to the macro's field list, to
//! [`RunSettings::over`], and check it in `NewRun::check`; the bodies `POST /runs`,
//! `POST /runs/runs` and `POST/PUT /tasks` then carry it.

use serde::Serialize;

/// How a run is to be run, as a client asks for it: every field optional, absent ones
/// taken from a task or the API's defaults ([`SubmitPolicy`](super::SubmitPolicy)) when
/// the run is checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunSettings {
    /// Worker queue.
    pub queue: Option<String>,
    /// Seconds before the script is killed.
    pub timeout_seconds: Option<i64>,
    /// Attempts in all.
    pub max_attempts: Option<i64>,
    /// Delay before the first retry (seconds).
    pub retry_backoff_seconds: Option<f64>,
    /// Longest delay between attempts (seconds).
    pub retry_backoff_max_seconds: Option<f64>,
}

impl RunSettings {
    /// These settings where given, `base`'s elsewhere (a run's own settings over its
    /// task's).
    pub fn over(self, base: RunSettings) -> RunSettings {
        RunSettings {
            queue: self.queue.or(base.queue),
            timeout_seconds: self.timeout_seconds.or(base.timeout_seconds),
            max_attempts: self.max_attempts.or(base.max_attempts),
            retry_backoff_seconds: self.retry_backoff_seconds.or(base.retry_backoff_seconds),
            retry_backoff_max_seconds: self
                .retry_backoff_max_seconds
                .or(base.retry_backoff_max_seconds),
        }
    }
}

/// Declares an API request body with the run settings as its own top-level fields (the
/// wire shape clients know: `{"script": …, "queue": …, "timeout_seconds": …}`), each with
/// its one doc comment, and a `settings()` method that gathers them into a [`RunSettings`].
/// (Fields are written out rather than `#[serde(flatten)]`ed because flatten would lose
/// `deny_unknown_fields` and split the OpenAPI schema.)
#[macro_export]
macro_rules! with_run_settings {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$field_meta:meta])* $field_vis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$field_meta])* $field_vis $field: $ty, )*
            /// Worker queue (see `/meta`); the first configured queue when absent.
            pub queue: Option<String>,
            /// Seconds before the script is killed.
            pub timeout_seconds: Option<i64>,
            /// Attempts in all (1-20, default 1): a failed or timed-out attempt with attempts
            /// left is retried after an exponential backoff with jitter.
            pub max_attempts: Option<i64>,
            /// Delay before the first retry in seconds (default 10; doubles each attempt).
            pub retry_backoff_seconds: Option<f64>,
            /// Longest delay between attempts in seconds (default 600), at least
            /// `retry_backoff_seconds`.
            pub retry_backoff_max_seconds: Option<f64>,
        }

        impl $name {
            /// The run settings this body gives.
            pub fn settings(&self) -> $crate::runs::RunSettings {
                $crate::runs::RunSettings {
                    queue: self.queue.clone(),
                    timeout_seconds: self.timeout_seconds,
                    max_attempts: self.max_attempts,
                    retry_backoff_seconds: self.retry_backoff_seconds,
                    retry_backoff_max_seconds: self.retry_backoff_max_seconds,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    with_run_settings! {
        /// A body as the API declares one.
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            script: String,
        }
    }

    #[test]
    fn a_body_reads_every_setting_at_the_top_level_and_refuses_unknown_fields() {
        let body: Body = serde_json::from_str(
            r#"{"script": "s", "queue": "q", "timeout_seconds": 5, "max_attempts": 3,
                "retry_backoff_seconds": 1.5, "retry_backoff_max_seconds": 9.0}"#,
        )
        .unwrap();
        assert_eq!(body.script, "s");
        assert_eq!(
            body.settings(),
            RunSettings {
                queue: Some("q".into()),
                timeout_seconds: Some(5),
                max_attempts: Some(3),
                retry_backoff_seconds: Some(1.5),
                retry_backoff_max_seconds: Some(9.0),
            }
        );
        let err = serde_json::from_str::<Body>(r#"{"script": "s", "queu": "q"}"#)
            .err()
            .expect("an unknown field is refused");
        assert!(err.to_string().contains("queu"), "{err}");
    }

    #[test]
    fn given_settings_win_over_the_base_and_absent_ones_fall_through() {
        let base = RunSettings {
            queue: Some("task-queue".into()),
            timeout_seconds: Some(60),
            max_attempts: Some(3),
            retry_backoff_seconds: Some(2.0),
            retry_backoff_max_seconds: Some(20.0),
        };
        let own = RunSettings {
            timeout_seconds: Some(5),
            retry_backoff_max_seconds: Some(30.0),
            ..RunSettings::default()
        };
        assert_eq!(
            own.over(base),
            RunSettings {
                queue: Some("task-queue".into()),
                timeout_seconds: Some(5),
                max_attempts: Some(3),
                retry_backoff_seconds: Some(2.0),
                retry_backoff_max_seconds: Some(30.0),
            }
        );
    }
}
