//! What the user types that is not a flag: parameters, files, ages, requirement lines.

use std::path::Path;

use serde_json::{Map, Value};

use crate::api::CliError;

/// `--param KEY=VALUE`: the value read as JSON when it parses, else as text.
pub fn parse_param(raw: &str) -> Result<(String, Value), CliError> {
    let (k, v) = raw
        .split_once('=')
        .ok_or_else(|| CliError(format!("--param '{raw}' must be KEY=VALUE")))?;
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

/// A file the user named, or an error saying which and why.
pub fn read_file(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError(format!("cannot read {}: {e}", path.display())))
}

/// The parameters of `--params-json FILE` and `--param k=v` (the latter win).
pub fn parameters(
    params: &[String],
    params_json: Option<&Path>,
) -> Result<Map<String, Value>, CliError> {
    let mut parameters = match params_json {
        Some(path) => match serde_json::from_str::<Value>(&read_file(path)?) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(CliError(format!(
                    "{} must hold a JSON object of parameters",
                    path.display()
                )));
            }
        },
        None => Map::new(),
    };
    for raw in params {
        let (k, v) = parse_param(raw)?;
        parameters.insert(k, v);
    }
    Ok(parameters)
}

/// `--since`: an RFC 3339 time, or an age (`90s`, `30m`, `2h`, `1d`) before now.
pub fn since(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, CliError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let bad = || {
        CliError(format!(
            "--since '{raw}' must be an RFC 3339 time (2026-11-24T08:00:00Z) or an age like 30m, 2h, 1d"
        ))
    };
    let (number, unit) = raw.split_at(raw.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(bad()),
    };
    Ok(chrono::Utc::now() - chrono::Duration::seconds(seconds))
}

/// Requirement lines of a requirements.txt (comments and blank lines skipped).
pub fn requirement_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
