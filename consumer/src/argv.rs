//! Parameters to command-line arguments. Each becomes separate argv elements (never a
//! shell string), so a value like `$(id)` reaches the script byte for byte.
//!
//! `{"url": "u", "limit": 5, "verbose": true, "dry": false, "tag": ["a", "b"], "opts": {"k": 1}}`
//! → `--limit 5 --opts {"k":1} --tag a --tag b --url u --verbose` (keys in sorted order;
//! `true` is a bare flag, `false` and `null` are left out, arrays repeat the flag,
//! objects are passed as JSON text).

use serde_json::Value;

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The argv elements for a parameter object (empty for anything but an object).
pub fn parameters_to_args(params: &Value) -> Vec<String> {
    let Value::Object(map) = params else {
        return Vec::new();
    };
    let mut args = Vec::new();
    for (key, value) in map {
        let flag = format!("--{key}");
        match value {
            Value::Null | Value::Bool(false) => {}
            Value::Bool(true) => args.push(flag),
            Value::Array(items) => {
                for item in items {
                    if let Some(text) = scalar_text(item) {
                        args.push(flag.clone());
                        args.push(text);
                    }
                }
            }
            other => {
                if let Some(text) = scalar_text(other) {
                    args.push(flag);
                    args.push(text);
                }
            }
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_every_json_kind() {
        let args = parameters_to_args(&json!({
            "url": "http://x/feed", "limit": 5, "ratio": 0.5, "verbose": true, "dry": false,
            "none": null, "tag": ["a", 2, null], "opts": {"k": [1]}
        }));
        assert_eq!(
            args,
            vec![
                "--limit",
                "5",
                "--opts",
                r#"{"k":[1]}"#,
                "--ratio",
                "0.5",
                "--tag",
                "a",
                "--tag",
                "2",
                "--url",
                "http://x/feed",
                "--verbose"
            ]
        );
    }

    #[test]
    fn hostile_values_stay_single_arguments() {
        let args = parameters_to_args(&json!({"q": "\"; rm -rf / #", "x": "$(id)"}));
        assert_eq!(args, vec!["--q", "\"; rm -rf / #", "--x", "$(id)"]);
    }

    #[test]
    fn non_objects_give_no_args() {
        assert!(parameters_to_args(&json!([1, 2])).is_empty());
        assert!(parameters_to_args(&json!(null)).is_empty());
    }
}
