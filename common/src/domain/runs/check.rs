//! Checking a run request before anything is written: `NewRun::check` turns it into a
//! `RunSpec` under the `SubmitPolicy`, and every refusal names its field.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::Error;
use crate::limits::RunLimits;
use crate::names::is_valid_parameter_key;

use super::*;

/// Limits and defaults applied to every submission.
#[derive(Debug, Clone)]
pub struct SubmitPolicy {
    /// Queues runs may be sent to (the ones declared on the broker).
    pub queues: Vec<String>,
    /// Queue used when none is given.
    pub default_queue: String,
    /// Timeout used when none is given (seconds).
    pub default_timeout_seconds: i32,
    /// Largest timeout accepted (seconds).
    pub max_timeout_seconds: i32,
    /// Largest serialized parameter object (bytes).
    pub max_parameters_bytes: usize,
    /// Retry policy of a run that gives none.
    pub default_retry: RetryPolicy,
}

/// How often and how patiently a failed or timed-out run is tried again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (1: no retry).
    pub max_attempts: i32,
    /// Delay before the first retry (seconds); doubles each attempt, with jitter.
    pub backoff_seconds: f64,
    /// Longest delay between attempts (seconds).
    pub backoff_max_seconds: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff_seconds: 10.0,
            backoff_max_seconds: 600.0,
        }
    }
}

/// Most attempts a run may ask for.
pub const MAX_ATTEMPTS: i32 = 20;

fn check_retry(
    defaults: RetryPolicy,
    max_attempts: Option<i64>,
    backoff: Option<f64>,
    backoff_max: Option<f64>,
) -> Result<RetryPolicy, Error> {
    let policy = RetryPolicy {
        max_attempts: match max_attempts {
            None => defaults.max_attempts,
            Some(n) if (1..=i64::from(MAX_ATTEMPTS)).contains(&n) => n as i32,
            Some(n) => {
                return Err(Error::invalid(
                    "invalid_retry",
                    "max_attempts",
                    format!("max_attempts is {n}; give 1 to {MAX_ATTEMPTS}"),
                ));
            }
        },
        backoff_seconds: backoff.unwrap_or(defaults.backoff_seconds),
        backoff_max_seconds: backoff_max.unwrap_or(defaults.backoff_max_seconds),
    };
    if !(0.0..=86_400.0).contains(&policy.backoff_seconds) {
        return Err(Error::invalid(
            "invalid_retry",
            "retry_backoff_seconds",
            "retry_backoff_seconds must be between 0 and 86400",
        ));
    }
    if !(policy.backoff_seconds..=86_400.0).contains(&policy.backoff_max_seconds) {
        return Err(Error::invalid(
            "invalid_retry",
            "retry_backoff_max_seconds",
            "retry_backoff_max_seconds must be between retry_backoff_seconds and 86400",
        ));
    }
    Ok(policy)
}

/// A request for a run.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Script name.
    pub script: String,
    /// Pinned version; latest when absent.
    pub version: Option<i32>,
    /// Parameter object.
    pub parameters: Map<String, Value>,
    /// Queue, timeout and retries; the policy's defaults where absent.
    pub settings: RunSettings,
    /// Client key: the same key returns the same run.
    pub idempotency_key: Option<String>,
    /// Who asks.
    pub trigger: Trigger,
    /// Name of the request field holding the script name (`script`, `script_name`).
    pub script_field: &'static str,
    /// The task the run comes from, if any.
    pub task: Option<String>,
    /// The schedule fire it comes from: (schedule id, scheduled time). Unique per run.
    pub fire: Option<(Uuid, DateTime<Utc>)>,
    /// Extra environment variables for the script (checked by [`check_env`]).
    pub env: Map<String, Value>,
    /// Resource limits (a task's); the consumer's defaults where unset.
    pub limits: RunLimits,
    /// Secrets for the script's environment (env name → secret name; a task's).
    pub secrets: Map<String, Value>,
}

impl Default for NewRun {
    fn default() -> Self {
        NewRun {
            script: String::new(),
            version: None,
            parameters: Map::new(),
            settings: RunSettings::default(),
            idempotency_key: None,
            trigger: Trigger::Api,
            script_field: "script",
            task: None,
            fire: None,
            env: Map::new(),
            limits: RunLimits::default(),
            secrets: Map::new(),
        }
    }
}

/// A run request with every field checked and every default filled in.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Script name.
    pub script: String,
    /// Pinned version; latest when absent.
    pub version: Option<i32>,
    /// Name of the request field holding the script name (for error messages).
    pub script_field: &'static str,
    /// Parameter object.
    pub parameters: Map<String, Value>,
    /// Worker queue.
    pub queue: String,
    /// Timeout (seconds).
    pub timeout_seconds: i32,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Client key.
    pub idempotency_key: Option<String>,
    /// Who asks.
    pub trigger: Trigger,
    /// The task, if any.
    pub task: Option<String>,
    /// The schedule fire, if any.
    pub fire: Option<(Uuid, DateTime<Utc>)>,
    /// Extra environment variables (string values).
    pub env: Map<String, Value>,
    /// Resource limits.
    pub limits: RunLimits,
    /// Secrets for the environment (env name → secret name).
    pub secrets: Map<String, Value>,
}

impl NewRun {
    /// Checks every field against `policy` and fills in its defaults.
    pub fn check(self, policy: &SubmitPolicy) -> Result<RunSpec, Error> {
        check_parameters(&self.parameters, policy.max_parameters_bytes)?;
        let settings = self.settings;
        let queue = check_queue(policy, settings.queue.as_deref())?;
        let timeout_seconds = check_timeout(policy, settings.timeout_seconds)?;
        check_idempotency_key(self.idempotency_key.as_deref())?;
        check_env(&self.env)?;
        self.limits.check("limits")?;
        let retry = check_retry(
            policy.default_retry,
            settings.max_attempts,
            settings.retry_backoff_seconds,
            settings.retry_backoff_max_seconds,
        )?;
        Ok(RunSpec {
            script: self.script,
            version: self.version,
            script_field: self.script_field,
            parameters: self.parameters,
            queue,
            timeout_seconds,
            retry,
            idempotency_key: self.idempotency_key,
            trigger: self.trigger,
            task: self.task,
            fire: self.fire,
            env: self.env,
            limits: self.limits,
            secrets: self.secrets,
        })
    }
}

/// Largest extra environment of a run, as JSON (bytes).
pub const MAX_ENV_BYTES: usize = 32 * 1024;

/// Checks extra environment variables: POSIX-style names that do not start with
/// `RUNFLEET_` (those are set by the consumer), string values without NUL.
pub fn check_env(env: &Map<String, Value>) -> Result<(), Error> {
    for (name, value) in env {
        let field = format!("env.{name}");
        if !crate::names::is_valid_env_name(name) {
            return Err(Error::invalid(
                "invalid_env",
                field,
                format!(
                    "environment variable name '{name}' must be letters, digits and _ (not starting with a digit, at most 128)"
                ),
            ));
        }
        if name.to_ascii_uppercase().starts_with("RUNFLEET_") {
            return Err(Error::invalid(
                "invalid_env",
                field,
                format!(
                    "'{name}': RUNFLEET_* variables are set by the consumer and cannot be overridden"
                ),
            ));
        }
        match value {
            Value::String(v) if !v.contains('\0') => {}
            _ => {
                return Err(Error::invalid(
                    "invalid_env",
                    field,
                    format!("the value of '{name}' must be a string without NUL characters"),
                ));
            }
        }
    }
    let size = serde_json::to_vec(env).map(|v| v.len()).unwrap_or(0);
    if size > MAX_ENV_BYTES {
        return Err(Error::invalid(
            "env_too_large",
            "env",
            format!("env is {size} bytes as JSON; the limit is {MAX_ENV_BYTES}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_parameters(params: &Map<String, Value>, max_bytes: usize) -> Result<(), Error> {
    for key in params.keys() {
        if !is_valid_parameter_key(key) {
            return Err(Error::invalid(
                "invalid_parameter_key",
                format!("parameters.{key}"),
                format!(
                    "parameter name '{key}' becomes the flag --{key}: start with a letter or _, then letters, digits, _ - (at most 64)"
                ),
            ));
        }
    }
    let size = serde_json::to_vec(params).map(|v| v.len()).unwrap_or(0);
    if size > max_bytes {
        return Err(Error::invalid(
            "parameters_too_large",
            "parameters",
            format!("parameters are {size} bytes as JSON; the limit is {max_bytes}"),
        ));
    }
    if contains_nul(&Value::Object(params.clone())) {
        return Err(Error::invalid(
            "invalid_parameters",
            "parameters",
            "parameters contain a NUL character, which cannot be passed in argv or env",
        ));
    }
    for (key, value) in params {
        if let Some(n) = oversized_number(value) {
            return Err(Error::invalid(
                "invalid_parameters",
                format!("parameters.{key}"),
                format!(
                    "parameter '{key}' holds the number {n:e}, beyond the {MAX_JSON_NUMBER:e} a run can keep; pass it as a string"
                ),
            ));
        }
        if depth(value) > MAX_PARAMETER_DEPTH {
            return Err(Error::invalid(
                "parameters_too_deep",
                format!("parameters.{key}"),
                format!(
                    "parameter '{key}' nests more than {MAX_PARAMETER_DEPTH} arrays or objects deep; flatten it"
                ),
            ));
        }
    }
    Ok(())
}

/// Deepest nesting of arrays and objects a parameter value may have.
pub const MAX_PARAMETER_DEPTH: usize = 16;

/// Nesting depth of `v`: 0 for a scalar.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Largest magnitude of a JSON number a record keeps. Postgres stores a jsonb number as an
/// exact decimal, and one within a few units in the last place of `f64::MAX` does not read
/// back as an f64 (serde_json calls it out of range): the run could no longer be read.
pub const MAX_JSON_NUMBER: f64 = 1e308;

/// The first number in `v` whose magnitude is beyond [`MAX_JSON_NUMBER`].
pub fn oversized_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|x| x.abs() > MAX_JSON_NUMBER),
        Value::Array(a) => a.iter().find_map(oversized_number),
        Value::Object(o) => o.values().find_map(oversized_number),
        _ => None,
    }
}

/// True when any string (or key) in `v` holds a NUL, which argv, env and Postgres refuse.
pub fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(contains_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

fn check_queue(policy: &SubmitPolicy, queue: Option<&str>) -> Result<String, Error> {
    let queue = queue.unwrap_or(&policy.default_queue);
    if policy.queues.iter().any(|q| q == queue) {
        Ok(queue.to_string())
    } else {
        Err(Error::invalid(
            "unknown_queue",
            "queue",
            format!(
                "no worker queue '{queue}'; configured queues: {}",
                policy.queues.join(", ")
            ),
        ))
    }
}

fn check_timeout(policy: &SubmitPolicy, t: Option<i64>) -> Result<i32, Error> {
    match t {
        None => Ok(policy.default_timeout_seconds),
        Some(t) if t >= 1 && t <= i64::from(policy.max_timeout_seconds) => Ok(t as i32),
        Some(t) => Err(Error::invalid(
            "invalid_timeout",
            "timeout_seconds",
            format!(
                "timeout_seconds is {t}; give 1 to {}",
                policy.max_timeout_seconds
            ),
        )),
    }
}

/// Longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

fn check_idempotency_key(key: Option<&str>) -> Result<(), Error> {
    match key {
        Some(k)
            if k.is_empty()
                || k.chars().count() > MAX_IDEMPOTENCY_KEY
                || k.chars().any(char::is_control) =>
        {
            Err(Error::invalid(
                "invalid_idempotency_key",
                "idempotency_key",
                "idempotency_key is 1-200 printable characters",
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn deeply_nested_parameters_are_refused_naming_the_parameter() {
        let mut deep = serde_json::json!(1);
        for _ in 0..MAX_PARAMETER_DEPTH {
            deep = serde_json::json!([deep]);
        }
        let mut params = Map::new();
        params.insert("ok".into(), deep.clone());
        assert!(check_parameters(&params, 1 << 20).is_ok());
        params.insert("nested".into(), serde_json::json!({"a": deep}));
        let e = check_parameters(&params, 1 << 20).unwrap_err();
        assert!(
            matches!(e, Error::Invalid { ref field, .. } if field == "parameters.nested"),
            "{e}"
        );
    }

    use super::*;

    #[test]
    fn retry_policy_bounds() {
        let d = RetryPolicy::default();
        assert_eq!(check_retry(d, None, None, None).unwrap(), d);
        assert_eq!(
            check_retry(d, Some(3), Some(1.0), Some(5.0))
                .unwrap()
                .max_attempts,
            3
        );
        for (n, b, m, field) in [
            (Some(0), None, None, "max_attempts"),
            (Some(21), None, None, "max_attempts"),
            (None, Some(-1.0), None, "retry_backoff_seconds"),
            (None, Some(10.0), Some(5.0), "retry_backoff_max_seconds"),
        ] {
            match check_retry(d, n, b, m) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }

    fn policy() -> SubmitPolicy {
        SubmitPolicy {
            queues: vec!["default".into(), "etl".into()],
            default_queue: "default".into(),
            default_timeout_seconds: 60,
            max_timeout_seconds: 3600,
            max_parameters_bytes: 100,
            default_retry: RetryPolicy::default(),
        }
    }

    fn field(e: Error) -> String {
        match e {
            Error::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parameters_keys_size_and_nul() {
        let mut p = Map::new();
        p.insert("url".into(), Value::String("x".into()));
        assert!(check_parameters(&p, 100).is_ok());
        let huge: Map<String, Value> =
            serde_json::from_str(r#"{"x": [1, {"y": -1.7976931348623157e308}]}"#).unwrap();
        assert_eq!(
            field(check_parameters(&huge, 100).unwrap_err()),
            "parameters.x"
        );
        let fine: Map<String, Value> =
            serde_json::from_str(r#"{"x": 1e308, "y": 1e-400}"#).unwrap();
        assert!(check_parameters(&fine, 100).is_ok());
        p.insert("--evil".into(), Value::Bool(true));
        assert_eq!(
            field(check_parameters(&p, 100).unwrap_err()),
            "parameters.--evil"
        );
        let mut big = Map::new();
        big.insert("a".into(), Value::String("x".repeat(200)));
        assert_eq!(
            field(check_parameters(&big, 100).unwrap_err()),
            "parameters"
        );
        let mut nul = Map::new();
        nul.insert("a".into(), serde_json::json!(["ok", "b\0d"]));
        assert_eq!(
            field(check_parameters(&nul, 100).unwrap_err()),
            "parameters"
        );
    }

    #[test]
    fn queue_and_timeout_policy() {
        let p = policy();
        assert_eq!(check_queue(&p, None).unwrap(), "default");
        assert_eq!(check_queue(&p, Some("etl")).unwrap(), "etl");
        assert_eq!(field(check_queue(&p, Some("gpu")).unwrap_err()), "queue");
        assert_eq!(check_timeout(&p, None).unwrap(), 60);
        assert_eq!(check_timeout(&p, Some(3600)).unwrap(), 3600);
        assert_eq!(
            field(check_timeout(&p, Some(0)).unwrap_err()),
            "timeout_seconds"
        );
        assert_eq!(
            field(check_timeout(&p, Some(3601)).unwrap_err()),
            "timeout_seconds"
        );
    }

    #[test]
    fn idempotency_keys() {
        assert!(check_idempotency_key(None).is_ok());
        assert!(check_idempotency_key(Some("order-42")).is_ok());
        assert!(check_idempotency_key(Some("")).is_err());
        assert!(check_idempotency_key(Some("a\nb")).is_err());
    }
}
