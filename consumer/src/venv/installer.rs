//! The installers: uv (fast, with its download cache on the same volume) or, when uv is not
//! available, `python -m venv` + pip. Each runs as a child process with a timeout and an
//! environment of its own (no `PIP_*`/`UV_*` from the consumer: the resolved settings are
//! passed explicitly, so what is hashed is what is used).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::child::{self, Limits};
use crate::spawn::Command;
use crate::venv::index::IndexSettings;

/// Which tool builds venvs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installer {
    /// The uv executable at this path.
    Uv(PathBuf),
    /// `python -m venv` + pip.
    Pip,
}

impl Installer {
    /// Name for logs and markers.
    pub fn name(&self) -> &'static str {
        match self {
            Installer::Uv(_) => "uv",
            Installer::Pip => "pip",
        }
    }
}

/// A failed install step: what ran and the tail of its output.
#[derive(Debug)]
pub struct StepFailed {
    /// The step, e.g. `uv pip install`.
    pub step: String,
    /// Why (exit code, timeout, spawn error).
    pub reason: String,
    /// The last lines of its output.
    pub tail: String,
}

const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
];

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs one step; returns its stdout.
async fn step(
    name: &str,
    mut command: Command,
    download_cache: &Path,
    timeout: Duration,
) -> Result<String, StepFailed> {
    command
        .env_from_consumer(PASSED_THROUGH)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("UV_CACHE_DIR", download_cache)
        .env("UV_NO_CONFIG", "1")
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NO_PROGRESS", "1");
    let limits = Limits {
        timeout,
        kill_grace: Duration::from_secs(2),
        output_limit: 256 * 1024,
        // The installer is ours, not a script: no per-run limits.
        rlimits: Default::default(),
    };
    // Installs are not cancelled with a run: other runs may be waiting for the same venv.
    let never = tokio_util::sync::CancellationToken::new();
    let no_live = std::sync::Arc::new(crate::live::LiveOutput::disabled());
    let finished = child::run(command, &limits, &never, &no_live)
        .await
        .map_err(|e| StepFailed {
            step: name.into(),
            reason: format!("could not start: {e}"),
            tail: String::new(),
        })?;
    let output = format!("{}{}", finished.stdout.text, finished.stderr.text);
    let reason = if finished.timed_out {
        Some(format!(
            "timed out after {timeout:?} (venv.install_timeout_seconds)"
        ))
    } else {
        match finished.status {
            Some(s) if s.success() => None,
            Some(s) => Some(format!("exited with {s}")),
            None => Some("was killed".into()),
        }
    };
    match reason {
        None => Ok(finished.stdout.text),
        Some(reason) => Err(StepFailed {
            step: name.into(),
            reason,
            tail: last_lines(&output, 30),
        }),
    }
}

fn index_args(settings: &IndexSettings, installer: &Installer) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(u) = &settings.index_url {
        args.extend(["--index-url".to_string(), u.clone()]);
    }
    for u in &settings.extra_index_urls {
        args.extend(["--extra-index-url".to_string(), u.clone()]);
    }
    for h in &settings.trusted_hosts {
        let flag = match installer {
            Installer::Uv(_) => "--allow-insecure-host",
            Installer::Pip => "--trusted-host",
        };
        args.extend([flag.to_string(), h.clone()]);
    }
    if let (Some(t), Installer::Pip) = (settings.timeout, installer) {
        args.extend(["--timeout".to_string(), t.to_string()]);
    }
    args.extend(settings.extra_args.iter().cloned());
    args
}

/// Creates a venv at `dir` for `interpreter` and installs `requirements_file` into it.
/// Returns the `freeze` output (resolved versions).
pub async fn build(
    installer: &Installer,
    interpreter: &Path,
    dir: &Path,
    requirements_file: &Path,
    settings: &IndexSettings,
    download_cache: &Path,
    timeout: Duration,
) -> Result<String, StepFailed> {
    let venv_python = dir.join("bin").join("python");
    match installer {
        Installer::Uv(uv) => {
            let mut c = Command::new(uv);
            c.arg("venv")
                .arg("--quiet")
                .arg("--python")
                .arg(interpreter)
                .arg(dir);
            step("uv venv", c, download_cache, timeout).await?;
            let mut c = Command::new(uv);
            c.args(["pip", "install", "--quiet", "--python"])
                .arg(&venv_python)
                .args(index_args(settings, installer))
                .arg("-r")
                .arg(requirements_file);
            if let Some(t) = settings.timeout {
                c.env("UV_HTTP_TIMEOUT", t.to_string());
            }
            step("uv pip install", c, download_cache, timeout).await?;
            let mut c = Command::new(uv);
            c.args(["pip", "freeze", "--python"]).arg(&venv_python);
            step("uv pip freeze", c, download_cache, timeout).await
        }
        Installer::Pip => {
            let mut c = Command::new(interpreter);
            c.args(["-m", "venv"]).arg(dir);
            step("python -m venv", c, download_cache, timeout).await?;
            let mut c = Command::new(&venv_python);
            c.args(["-m", "pip", "install", "--quiet", "--cache-dir"])
                .arg(download_cache)
                .args(index_args(settings, installer))
                .arg("-r")
                .arg(requirements_file);
            step("pip install", c, download_cache, timeout).await?;
            let mut c = Command::new(&venv_python);
            c.args(["-m", "pip", "freeze"]);
            step("pip freeze", c, download_cache, timeout).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_arguments_per_installer() {
        let s = IndexSettings {
            index_url: Some("http://127.0.0.1:1/simple".into()),
            extra_index_urls: vec!["http://e/simple".into()],
            trusted_hosts: vec!["e".into()],
            timeout: Some(5),
            extra_args: vec!["--no-deps".into()],
        };
        assert_eq!(
            index_args(&s, &Installer::Pip),
            vec![
                "--index-url",
                "http://127.0.0.1:1/simple",
                "--extra-index-url",
                "http://e/simple",
                "--trusted-host",
                "e",
                "--timeout",
                "5",
                "--no-deps"
            ]
        );
        assert!(
            index_args(&s, &Installer::Uv("uv".into()))
                .contains(&"--allow-insecure-host".to_string())
        );
    }

    #[test]
    fn keeps_the_last_lines() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }
}
