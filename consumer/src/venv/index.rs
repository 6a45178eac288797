//! The package index settings in force, resolved once at start with the documented
//! precedence: `PIP_*` variables in the container, then `RUNFLEET_PIP__*`, then a mounted
//! `pip.conf`, then the default index. They are passed to the installer explicitly and
//! are part of a venv's signature (without credentials, so rotating a password does not
//! rebuild every venv). Credentials never leave this module unredacted except as installer
//! arguments.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::PipConfig;

/// Effective index settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexSettings {
    /// Main index (None: the installer's default, PyPI).
    pub index_url: Option<String>,
    /// Further indexes.
    pub extra_index_urls: Vec<String>,
    /// Trusted hosts.
    pub trusted_hosts: Vec<String>,
    /// Network timeout in seconds.
    pub timeout: Option<u64>,
    /// Extra installer arguments.
    pub extra_args: Vec<String>,
}

/// Replaces `user:password@` in a URL with `***@`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme && !url[scheme + 3..at].contains('/') => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Removes credentials entirely (for the signature).
fn without_credentials(url: &str) -> String {
    redact(url).replacen("***@", "", 1)
}

/// Redacts every URL-looking credential in free text (installer output, errors).
pub fn redact_text(text: &str, settings: &IndexSettings) -> String {
    let mut out = text.to_string();
    for url in settings.index_url.iter().chain(&settings.extra_index_urls) {
        let redacted = redact(url);
        if redacted != *url {
            out = out.replace(url.as_str(), &redacted);
            // Installers sometimes print the credentials part alone.
            if let (Some(s), Some(at)) = (url.find("://"), url.find('@')) {
                let creds = &url[s + 3..at];
                if creds.len() > 3 {
                    out = out.replace(creds, "***");
                }
            }
        }
    }
    out
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// Reads `[global]` and `[install]` keys of a pip.conf (later sections win).
fn read_pip_conf(path: &PathBuf) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    let mut section = String::new();
    let mut last_key: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            section = trimmed[1..trimmed.len() - 1].trim().to_string();
            last_key = None;
            continue;
        }
        if section != "global" && section != "install" {
            continue;
        }
        // Continuation lines (indented) extend the previous value, as in pip.conf lists.
        if line.starts_with([' ', '\t']) {
            if let Some(k) = &last_key {
                let v = out.entry(k.clone()).or_insert_with(String::new);
                v.push(' ');
                v.push_str(trimmed);
            }
            continue;
        }
        if let Some((k, v)) = trimmed.split_once(['=', ':']) {
            let key = k.trim().to_lowercase().replace('_', "-");
            out.insert(key.clone(), v.trim().to_string());
            last_key = Some(key);
        }
    }
    out
}

fn pip_conf_paths(env: &HashMap<String, String>) -> Vec<PathBuf> {
    if let Some(p) = env.get("PIP_CONFIG_FILE") {
        return vec![PathBuf::from(p)];
    }
    let mut paths = vec![
        PathBuf::from("/etc/pip.conf"),
        PathBuf::from("/etc/xdg/pip/pip.conf"),
    ];
    if let Some(home) = env.get("HOME") {
        paths.push(PathBuf::from(home).join(".pip/pip.conf"));
        paths.push(PathBuf::from(home).join(".config/pip/pip.conf"));
    }
    paths
}

impl IndexSettings {
    /// Resolves the settings from the process environment, `config`, and pip.conf files.
    pub fn resolve(config: &PipConfig) -> IndexSettings {
        Self::resolve_from(config, &std::env::vars().collect())
    }

    /// Like [`IndexSettings::resolve`] with an explicit environment (for tests).
    pub fn resolve_from(config: &PipConfig, env: &HashMap<String, String>) -> IndexSettings {
        let mut conf = HashMap::new();
        for path in pip_conf_paths(env) {
            conf.extend(read_pip_conf(&path));
        }
        let env_get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
        let index_url = env_get("PIP_INDEX_URL")
            .or_else(|| config.index_url.clone())
            .or_else(|| conf.get("index-url").cloned());
        let extra_index_urls = env_get("PIP_EXTRA_INDEX_URL")
            .map(|v| words(&v))
            .or_else(|| {
                (!config.extra_index_url.is_empty()).then(|| config.extra_index_url.clone())
            })
            .or_else(|| conf.get("extra-index-url").map(|v| words(v)))
            .unwrap_or_default();
        let trusted_hosts = env_get("PIP_TRUSTED_HOST")
            .map(|v| words(&v))
            .or_else(|| (!config.trusted_host.is_empty()).then(|| config.trusted_host.clone()))
            .or_else(|| conf.get("trusted-host").map(|v| words(v)))
            .unwrap_or_default();
        let timeout = env_get("PIP_TIMEOUT")
            .or_else(|| env_get("PIP_DEFAULT_TIMEOUT"))
            .and_then(|v| v.trim().parse().ok())
            .or(config.timeout)
            .or_else(|| conf.get("timeout").and_then(|v| v.parse().ok()));
        IndexSettings {
            index_url,
            extra_index_urls,
            trusted_hosts,
            timeout,
            extra_args: config.extra_args.clone(),
        }
    }

    /// The lines hashed into a venv signature (credentials removed).
    pub fn identity(&self) -> String {
        let mut lines = vec![format!(
            "index={}",
            self.index_url
                .as_deref()
                .map(without_credentials)
                .unwrap_or_default()
        )];
        for u in &self.extra_index_urls {
            lines.push(format!("extra={}", without_credentials(u)));
        }
        for h in &self.trusted_hosts {
            lines.push(format!("trusted={h}"));
        }
        for a in &self.extra_args {
            lines.push(format!("arg={a}"));
        }
        lines.join("\n")
    }

    /// A description safe for logs and the API.
    pub fn describe(&self) -> String {
        match &self.index_url {
            Some(u) => redact(u),
            None => "default index (PyPI)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m.entry("PIP_CONFIG_FILE".into())
            .or_insert_with(|| "/nonexistent/pip.conf".into());
        m
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("https://user:s3cret@pypi.corp/simple"),
            "https://***@pypi.corp/simple"
        );
        assert_eq!(redact("https://pypi.org/simple"), "https://pypi.org/simple");
        let s = IndexSettings {
            index_url: Some("https://user:s3cret@pypi.corp/simple".into()),
            ..Default::default()
        };
        let text = redact_text(
            "GET https://user:s3cret@pypi.corp/simple/x failed for user:s3cret",
            &s,
        );
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!s.identity().contains("s3cret"));
        assert!(!s.describe().contains("s3cret"));
    }

    #[test]
    fn precedence_env_then_settings_then_pip_conf() {
        let dir = std::env::temp_dir().join(format!("rf-pipconf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("pip.conf");
        std::fs::write(
            &conf,
            "[global]\nindex-url = http://conf/simple\nextra-index-url =\n    http://e1/simple\n    http://e2/simple\ntimeout = 7\n",
        )
        .unwrap();
        let conf_env = |extra: &[(&str, &str)]| {
            let mut e = env(extra);
            e.insert("PIP_CONFIG_FILE".into(), conf.display().to_string());
            e
        };
        let none = PipConfig::default();
        let from_conf = IndexSettings::resolve_from(&none, &conf_env(&[]));
        assert_eq!(from_conf.index_url.as_deref(), Some("http://conf/simple"));
        assert_eq!(
            from_conf.extra_index_urls,
            vec!["http://e1/simple", "http://e2/simple"]
        );
        assert_eq!(from_conf.timeout, Some(7));

        let settings = PipConfig {
            index_url: Some("http://settings/simple".into()),
            timeout: Some(9),
            ..Default::default()
        };
        let s = IndexSettings::resolve_from(&settings, &conf_env(&[]));
        assert_eq!(s.index_url.as_deref(), Some("http://settings/simple"));
        assert_eq!(s.timeout, Some(9));

        let e = IndexSettings::resolve_from(
            &settings,
            &conf_env(&[("PIP_INDEX_URL", "http://env/simple")]),
        );
        assert_eq!(e.index_url.as_deref(), Some("http://env/simple"));
        std::fs::remove_dir_all(&dir).unwrap();

        assert_eq!(
            IndexSettings::resolve_from(&none, &env(&[])),
            IndexSettings::default()
        );
    }

    #[test]
    fn identity_changes_with_the_index_but_not_the_password() {
        let a = IndexSettings {
            index_url: Some("https://u:1@x/simple".into()),
            ..Default::default()
        };
        let b = IndexSettings {
            index_url: Some("https://u:2@x/simple".into()),
            ..Default::default()
        };
        let c = IndexSettings {
            index_url: Some("https://y/simple".into()),
            ..Default::default()
        };
        assert_eq!(a.identity(), b.identity());
        assert_ne!(a.identity(), c.identity());
    }
}
