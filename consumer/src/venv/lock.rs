//! Per-signature file locks (`flock`), so processes sharing one volume (a ReadWriteMany
//! claim) agree as well as tasks in one process: builders hold the lock exclusively, runs
//! using a venv hold it shared, and eviction only takes venvs whose lock it gets at once.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// A held lock; released when dropped (closing the file releases the flock).
#[derive(Debug)]
pub struct HeldLock {
    _file: File,
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
}

/// The lock file of `signature` under `cache_dir`.
pub fn lock_path(cache_dir: &Path, signature: &str) -> PathBuf {
    cache_dir.join(".locks").join(format!("{signature}.lock"))
}

/// Waits for the exclusive lock (on a blocking thread).
pub async fn exclusive(path: PathBuf) -> std::io::Result<HeldLock> {
    tokio::task::spawn_blocking(move || {
        let file = open(&path)?;
        file.lock()?;
        Ok(HeldLock { _file: file })
    })
    .await
    .expect("lock task does not panic")
}

/// Waits for a shared lock (on a blocking thread).
pub async fn shared(path: PathBuf) -> std::io::Result<HeldLock> {
    tokio::task::spawn_blocking(move || {
        let file = open(&path)?;
        file.lock_shared()?;
        Ok(HeldLock { _file: file })
    })
    .await
    .expect("lock task does not panic")
}

/// The exclusive lock if nobody holds any lock on it now.
pub fn try_exclusive(path: &Path) -> std::io::Result<Option<HeldLock>> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(HeldLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
