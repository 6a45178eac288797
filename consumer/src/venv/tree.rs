//! File-tree chores of the venv cache: a venv's size, moving a built venv into place, and
//! marking its last use.

use std::path::Path;
use std::time::SystemTime;

/// Bytes of the regular files under `path` (what the venv costs on the volume).
pub(super) fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Rewrites the build directory's absolute path to the final one in the venv's `bin/`
/// (script shebangs, activate scripts), so entry points work after the rename.
pub(super) fn relocate(tmp: &Path, final_dir: &Path) -> std::io::Result<()> {
    let from = tmp.to_string_lossy().into_owned();
    let to = final_dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir(tmp.join("bin"))?.flatten() {
        let path = entry.path();
        if !entry.file_type()?.is_file() || entry.metadata()?.len() > 1024 * 1024 {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        if text.contains(&from) {
            std::fs::write(&path, text.replace(&from, &to))?;
        }
    }
    Ok(())
}

/// Sets `path`'s mtime to now, creating it empty if absent (a venv's last use).
pub(super) fn touch(path: &Path) {
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
}
