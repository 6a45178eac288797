//! The rules for names users choose: scripts, tasks, queues, parameter keys, env names.
//!
//! Kept in one place so the API, the scheduler and the consumer agree on them.

/// Longest script name accepted.
pub const MAX_SCRIPT_NAME: usize = 128;

/// Longest queue name.
pub const MAX_QUEUE_NAME: usize = 64;

/// Longest parameter key.
pub const MAX_PARAMETER_KEY: usize = 64;

/// `fetch_rss.py`: starts with a letter or digit, then letters, digits, `_ . -`; no `..`;
/// at most 128 characters.
pub fn is_valid_script_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= MAX_SCRIPT_NAME
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !name.contains("..")
}

/// Task names follow the script-name rules (they appear in URLs and logs).
pub fn is_valid_task_name(name: &str) -> bool {
    is_valid_script_name(name)
}

/// Environment variable names a task may set: letters, digits and `_`, not starting with
/// a digit, at most 128 characters.
pub fn is_valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Worker queue names (and the AMQP prefix): 1-64 of `A-Z a-z 0-9 _ . -`.
pub fn is_valid_queue_name(name: &str) -> bool {
    (1..=MAX_QUEUE_NAME).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Parameter keys become `--key` flags: a letter or `_`, then letters, digits, `_ -`;
/// at most 64 characters. This keeps a key from ever looking like another flag's value.
pub fn is_valid_parameter_key(key: &str) -> bool {
    let mut chars = key.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    key.len() <= MAX_PARAMETER_KEY
        && (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names() {
        for ok in ["fetch_rss.py", "a", "Report-2024.v2.sh", "9lives"] {
            assert!(is_valid_script_name(ok), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in [
            "", ".hidden", "-x", "a/b", "a..py", "a b", "é.py", "x;rm", &long,
        ] {
            assert!(!is_valid_script_name(bad), "{bad}");
        }
        assert!(is_valid_script_name(&"a".repeat(128)));
    }

    #[test]
    fn queue_names() {
        assert!(is_valid_queue_name("default"));
        assert!(is_valid_queue_name("etl.high-prio_2"));
        assert!(!is_valid_queue_name(""));
        assert!(!is_valid_queue_name("a b"));
        assert!(!is_valid_queue_name(&"q".repeat(65)));
    }

    #[test]
    fn parameter_keys() {
        assert!(is_valid_parameter_key("url"));
        assert!(is_valid_parameter_key("_private"));
        assert!(is_valid_parameter_key("out-dir"));
        assert!(!is_valid_parameter_key("-x"));
        assert!(!is_valid_parameter_key("1st"));
        assert!(!is_valid_parameter_key("a=b"));
        assert!(!is_valid_parameter_key(""));
    }
}
