//! The hash-isolated venv cache on the consumer's own volume.
//!
//! A run's requirement set (the consumer's base set + the script's `requirements` + its
//! PEP 723 block) is normalized and hashed with the interpreter and the index settings
//! into a signature; `<cache_dir>/<signature>` holds the venv for exactly that set.
//!
//! - Build: under the signature's exclusive lock, into `.tmp-<signature>-…`, then a marker
//!   is written inside it and the directory is renamed into place. A venv without its
//!   marker is never used, so a crash or kill at any point leaves nothing a run would use;
//!   the next builder removes the leftovers.
//! - Use: a run holds the signature's lock shared while its script runs, so eviction
//!   (which only takes venvs it can lock exclusively at once) never removes a venv in use.
//! - Last use is the mtime of `<signature>/.runfleet-last-used`; eviction is by age
//!   (`venv.ttl_days`) and by total size (`venv.max_bytes`, least recently used first).

pub mod index;
pub mod installer;
pub mod lock;
pub mod metrics;
mod tree;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use metrics::{
    VENV_BYTES, VENV_ENTRIES, VENV_EVICTIONS, VENV_HITS, VENV_INSTALL_FAILURES,
    VENV_INSTALL_SECONDS, VENV_MISSES,
};
use runfleet_common::failure_code::FailureCode;
use runfleet_common::hash::sha256_hex;
use runfleet_common::requirements::{RequirementSet, pep723_dependencies};
use serde::{Deserialize, Serialize};

use crate::config::{ConsumerConfig, InstallerChoice};
use index::IndexSettings;
use installer::Installer;
use lock::HeldLock;
use tree::{dir_size, relocate, touch};

const MARKER: &str = ".runfleet-venv.json";
const LAST_USED: &str = ".runfleet-last-used";

/// Why a run's venv could not be had. Each maps to a run error code.
#[derive(Debug, thiserror::Error)]
pub enum VenvError {
    /// The script's requirements or PEP 723 block are not valid.
    #[error("invalid requirements: {0}")]
    InvalidRequirements(String),
    /// Installing is off (`RUNFLEET_PYTHON__AUTO_INSTALL=false`) and the set is not cached.
    #[error(
        "the requirement set {signature} is not in this consumer's venv cache and installing is off (python.auto_install=false)"
    )]
    NotCached {
        /// The set's signature.
        signature: String,
    },
    /// The installer failed; nothing was cached.
    #[error("installing dependencies failed: {step} {reason}")]
    InstallFailed {
        /// The step that failed.
        step: String,
        /// How it failed.
        reason: String,
        /// The installer's last output lines (credentials redacted).
        tail: String,
    },
    /// The cache directory could not be used.
    #[error("venv cache error: {0}")]
    Io(#[from] std::io::Error),
}

impl VenvError {
    /// The run error code.
    pub fn code(&self) -> FailureCode {
        match self {
            VenvError::InvalidRequirements(_) => FailureCode::InvalidRequirements,
            VenvError::NotCached { .. } => FailureCode::DependencyNotCached,
            VenvError::InstallFailed { .. } => FailureCode::DependencyInstallFailed,
            VenvError::Io(_) => FailureCode::VenvCacheError,
        }
    }
}

/// A venv a run may use until the lease is dropped.
#[derive(Debug)]
pub struct Lease {
    /// The venv's interpreter.
    pub python: PathBuf,
    /// The set's signature.
    pub signature: String,
    /// True when no install was needed.
    pub hit: bool,
    _lock: HeldLock,
}

/// What the marker inside each venv records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VenvEntry {
    /// The signature (the directory name).
    pub signature: String,
    /// The normalized requirement lines.
    pub requirements: Vec<String>,
    /// Resolved versions (`freeze`).
    pub resolved: Vec<String>,
    /// Interpreter the venv was built for.
    pub interpreter: String,
    /// Its version.
    pub interpreter_version: String,
    /// Index, credentials redacted.
    pub index: String,
    /// `uv` or `pip`.
    pub installer: String,
    /// When it was built.
    pub created_at: DateTime<Utc>,
    /// Install time in seconds.
    pub install_seconds: f64,
    /// Size on disk.
    pub size_bytes: u64,
    /// Last run that used it (filled in when listing).
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Why the cache could not be opened at start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A setting is wrong.
    #[error("invalid setting {key} ({env}): {message}")]
    Setting {
        /// Dotted key.
        key: &'static str,
        /// Its variable.
        env: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The venv cache of one consumer.
#[derive(Debug)]
pub struct VenvCache {
    dir: PathBuf,
    downloads: PathBuf,
    interpreter: PathBuf,
    interpreter_version: String,
    index: IndexSettings,
    installer: Installer,
    auto_install: bool,
    base: RequirementSet,
    install_timeout: Duration,
    ttl: Option<Duration>,
    max_bytes: Option<u64>,
}

impl VenvCache {
    /// Opens (creating) the cache and resolves the interpreter, installer, index settings
    /// and base requirement set.
    pub async fn open(config: &ConsumerConfig) -> Result<Self, OpenError> {
        let v = &config.venv;
        let setting = |key, env, message: String| OpenError::Setting { key, env, message };
        let downloads = v
            .download_cache_dir
            .clone()
            .unwrap_or_else(|| v.cache_dir.join(".downloads"));
        for d in [&v.cache_dir, &v.cache_dir.join(".locks"), &downloads] {
            std::fs::create_dir_all(d).map_err(|e| {
                setting(
                    "venv.cache_dir",
                    "RUNFLEET_VENV__CACHE_DIR",
                    format!("cannot create {}: {e}", d.display()),
                )
            })?;
        }
        let probe = tokio::process::Command::new(&config.consumer.python)
            .args([
                "-c",
                "import sys; print(sys.executable); print(sys.version.split()[0])",
            ])
            .output()
            .await
            .map_err(|e| {
                setting(
                    "consumer.python",
                    "RUNFLEET_CONSUMER__PYTHON",
                    format!("cannot start '{}': {e}", config.consumer.python),
                )
            })?;
        let out = String::from_utf8_lossy(&probe.stdout).into_owned();
        let mut lines = out.lines();
        let (Some(exe), Some(version)) = (lines.next(), lines.next()) else {
            return Err(setting(
                "consumer.python",
                "RUNFLEET_CONSUMER__PYTHON",
                format!(
                    "'{}' did not report its path and version",
                    config.consumer.python
                ),
            ));
        };
        let installer = match v.installer {
            InstallerChoice::Pip => Installer::Pip,
            InstallerChoice::Auto => {
                crate::spawn::which(&v.uv).map_or(Installer::Pip, Installer::Uv)
            }
            InstallerChoice::Uv => Installer::Uv(crate::spawn::which(&v.uv).ok_or_else(|| {
                setting(
                    "venv.uv",
                    "RUNFLEET_VENV__UV",
                    format!(
                        "uv executable '{}' not found (or set venv.installer=auto)",
                        v.uv
                    ),
                )
            })?),
        };
        let mut base = RequirementSet::new();
        if let Some(file) = &config.python.requirements_file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                setting(
                    "python.requirements_file",
                    "RUNFLEET_PYTHON__REQUIREMENTS_FILE",
                    format!("cannot read {}: {e}", file.display()),
                )
            })?;
            base.extend(text.lines()).map_err(|e| {
                setting(
                    "python.requirements_file",
                    "RUNFLEET_PYTHON__REQUIREMENTS_FILE",
                    e.to_string(),
                )
            })?;
        }
        base.extend(config.python.packages.iter().map(String::as_str))
            .map_err(|e| {
                setting(
                    "python.packages",
                    "RUNFLEET_PYTHON__PACKAGES",
                    e.to_string(),
                )
            })?;
        let cache = VenvCache {
            dir: v.cache_dir.clone(),
            downloads,
            interpreter: PathBuf::from(exe),
            interpreter_version: version.to_string(),
            index: IndexSettings::resolve(&config.pip),
            installer,
            auto_install: config.python.auto_install,
            base,
            install_timeout: Duration::from_secs(v.install_timeout_seconds),
            ttl: v.ttl_days.map(|d| Duration::from_secs(d * 86_400)),
            max_bytes: v.max_bytes,
        };
        cache.remove_abandoned_builds();
        cache.refresh_gauges();
        tracing::info!(
            dir = %cache.dir.display(), installer = cache.installer.name(),
            interpreter = %cache.interpreter.display(), version = cache.interpreter_version,
            index = cache.index.describe(), entries = cache.list().len(),
            "venv cache ready"
        );
        Ok(cache)
    }

    /// The interpreter the cache builds for (and plain runs use).
    pub fn interpreter(&self) -> &Path {
        &self.interpreter
    }

    /// The signature of a normalized set with this consumer's interpreter and index.
    pub fn signature(&self, set: &RequirementSet) -> String {
        let text = format!(
            "runfleet-venv-v1\ninterpreter={}\nversion={}\n{}\n--\n{}",
            self.interpreter.display(),
            self.interpreter_version,
            self.index.identity(),
            set.lines().join("\n")
        );
        sha256_hex(text.as_bytes())[..32].to_string()
    }

    /// The merged set for a script: base + its registered requirements + PEP 723 block.
    pub fn requirement_set(
        &self,
        requirements: &[String],
        content: &str,
    ) -> Result<RequirementSet, VenvError> {
        let mut set = self.base.clone();
        set.extend(requirements.iter().map(String::as_str))
            .map_err(|e| VenvError::InvalidRequirements(e.to_string()))?;
        let inline = pep723_dependencies(content)
            .map_err(|e| VenvError::InvalidRequirements(e.to_string()))?;
        set.extend(inline.iter().map(String::as_str))
            .map_err(|e| VenvError::InvalidRequirements(e.to_string()))?;
        Ok(set)
    }

    fn venv_dir(&self, signature: &str) -> PathBuf {
        self.dir.join(signature)
    }

    fn is_ready(&self, signature: &str) -> bool {
        self.venv_dir(signature).join(MARKER).is_file()
    }

    /// A venv for the set, built when missing (once, however many runs ask at the same
    /// time, in this process or others sharing the volume). None: the set is empty and
    /// the plain interpreter serves.
    pub async fn prepare(&self, set: &RequirementSet) -> Result<Option<Lease>, VenvError> {
        if set.is_empty() {
            return Ok(None);
        }
        let signature = self.signature(set);
        let lock_path = lock::lock_path(&self.dir, &signature);
        let mut installed_here = false;
        for _ in 0..3 {
            if self.is_ready(&signature) {
                let held = lock::shared(lock_path.clone()).await?;
                // Eviction may have won the race between the check and the lock.
                if self.is_ready(&signature) {
                    let dir = self.venv_dir(&signature);
                    touch(&dir.join(LAST_USED));
                    if installed_here {
                        // The new venv may push the cache over its limits; it is leased
                        // now, so only other venvs can go.
                        self.evict().await;
                    } else {
                        VENV_HITS.inc();
                    }
                    return Ok(Some(Lease {
                        python: dir.join("bin").join("python"),
                        signature,
                        hit: !installed_here,
                        _lock: held,
                    }));
                }
                drop(held);
            }
            if !self.auto_install {
                return Err(VenvError::NotCached { signature });
            }
            let build_lock = lock::exclusive(lock_path.clone()).await?;
            if !self.is_ready(&signature) {
                VENV_MISSES.inc();
                installed_here = true;
                let result = self.build(&signature, set).await;
                drop(build_lock);
                result?;
            }
        }
        Err(VenvError::Io(std::io::Error::other(
            "the venv was evicted repeatedly while being prepared",
        )))
    }

    /// Removes `.tmp-*` build directories nobody is building (left by a crash or kill).
    fn remove_abandoned_builds(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(".tmp-") else {
                continue;
            };
            let signature = rest.split('-').next().unwrap_or_default();
            if let Ok(Some(_held)) = lock::try_exclusive(&lock::lock_path(&self.dir, signature)) {
                let _ = std::fs::remove_dir_all(e.path());
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Builds the venv for `signature`; the caller holds its exclusive lock.
    async fn build(&self, signature: &str, set: &RequirementSet) -> Result<(), VenvError> {
        // Leftovers of an earlier build of this signature that died: nobody else can be
        // building it now (we hold the lock).
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!(".tmp-{signature}-"))
                {
                    let _ = std::fs::remove_dir_all(e.path());
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let nonce = format!(
            "{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let tmp = self.dir.join(format!(".tmp-{signature}-{nonce}"));
        let req_file = self.dir.join(format!(".tmp-{signature}-{nonce}.txt"));
        let lines = set.lines();
        std::fs::write(&req_file, lines.join("\n") + "\n")?;
        let started = Instant::now();
        tracing::info!(signature, requirements = ?lines, installer = self.installer.name(), "installing venv");
        let built = installer::build(
            &self.installer,
            &self.interpreter,
            &tmp,
            &req_file,
            &self.index,
            &self.downloads,
            self.install_timeout,
        )
        .await;
        let _ = std::fs::remove_file(&req_file);
        let freeze = match built {
            Ok(f) => f,
            Err(failed) => {
                let _ = std::fs::remove_dir_all(&tmp);
                VENV_INSTALL_FAILURES.inc();
                let tail = index::redact_text(&failed.tail, &self.index);
                let reason = index::redact_text(&failed.reason, &self.index);
                tracing::warn!(signature, step = failed.step, reason, "venv install failed");
                return Err(VenvError::InstallFailed {
                    step: failed.step,
                    reason,
                    tail,
                });
            }
        };
        let final_dir = self.venv_dir(signature);
        let finish = || -> std::io::Result<u64> {
            relocate(&tmp, &final_dir)?;
            let mut entry = VenvEntry {
                signature: signature.to_string(),
                requirements: lines.clone(),
                resolved: freeze
                    .lines()
                    .map(str::to_string)
                    .filter(|l| !l.is_empty())
                    .collect(),
                interpreter: self.interpreter.display().to_string(),
                interpreter_version: self.interpreter_version.clone(),
                index: self.index.describe(),
                installer: self.installer.name().to_string(),
                created_at: Utc::now(),
                install_seconds: started.elapsed().as_secs_f64(),
                size_bytes: 0,
                last_used_at: None,
            };
            entry.size_bytes = dir_size(&tmp);
            std::fs::write(tmp.join(MARKER), serde_json::to_vec_pretty(&entry)?)?;
            touch(&tmp.join(LAST_USED));
            std::fs::rename(&tmp, &final_dir)?;
            Ok(entry.size_bytes)
        };
        match finish() {
            Ok(size) => {
                let secs = started.elapsed().as_secs_f64();
                VENV_INSTALL_SECONDS.observe(secs);
                tracing::info!(
                    signature,
                    seconds = secs,
                    size_bytes = size,
                    "venv installed"
                );
                self.refresh_gauges();
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(VenvError::Io(e))
            }
        }
    }

    /// Every complete venv, least recently used first.
    pub fn list(&self) -> Vec<VenvEntry> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for e in entries.flatten() {
            let marker = e.path().join(MARKER);
            let Ok(bytes) = std::fs::read(&marker) else {
                continue;
            };
            let Ok(mut entry) = serde_json::from_slice::<VenvEntry>(&bytes) else {
                continue;
            };
            entry.last_used_at = std::fs::metadata(e.path().join(LAST_USED))
                .and_then(|m| m.modified())
                .ok()
                .map(DateTime::<Utc>::from);
            out.push(entry);
        }
        out.sort_by_key(|e| e.last_used_at);
        out
    }

    fn refresh_gauges(&self) {
        let entries = self.list();
        VENV_ENTRIES.set(entries.len() as i64);
        VENV_BYTES.set(entries.iter().map(|e| e.size_bytes).sum::<u64>() as i64);
    }

    fn remove(&self, signature: &str) -> bool {
        let Ok(Some(_held)) = lock::try_exclusive(&lock::lock_path(&self.dir, signature)) else {
            return false; // in use (or being built): never evicted
        };
        let dir = self.venv_dir(signature);
        // The rename makes the venv disappear at once for new runs; deletion can take time.
        let trash = self.dir.join(format!(".tmp-{signature}-evicted"));
        if std::fs::rename(&dir, &trash).is_err() {
            return false;
        }
        let _ = std::fs::remove_dir_all(&trash);
        VENV_EVICTIONS.inc();
        tracing::info!(signature, "venv evicted");
        true
    }

    /// Evicts by age, then by total size (least recently used first); skips venvs in use.
    /// Returns how many were removed.
    pub async fn evict(&self) -> usize {
        if self.ttl.is_none() && self.max_bytes.is_none() {
            return 0;
        }
        let mut removed = 0;
        let mut entries = self.list();
        if let Some(ttl) = self.ttl {
            let cutoff = Utc::now() - chrono::Duration::from_std(ttl).unwrap_or_default();
            entries.retain(|e| {
                let stale = e.last_used_at.is_none_or(|t| t < cutoff);
                if stale && self.remove(&e.signature) {
                    removed += 1;
                    false
                } else {
                    true
                }
            });
        }
        if let Some(max) = self.max_bytes {
            let mut total: u64 = entries.iter().map(|e| e.size_bytes).sum();
            for e in &entries {
                if total <= max {
                    break;
                }
                if self.remove(&e.signature) {
                    total = total.saturating_sub(e.size_bytes);
                    removed += 1;
                }
            }
        }
        self.refresh_gauges();
        removed
    }
}
