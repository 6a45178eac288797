//! Records the git commit of the build as `RUNFLEET_BUILD_COMMIT` (shown by `/meta`),
//! unless the builder set it (as the container build does).

fn main() {
    println!("cargo:rerun-if-env-changed=RUNFLEET_BUILD_COMMIT");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    if std::env::var_os("RUNFLEET_BUILD_COMMIT").is_some() {
        return;
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if !commit.is_empty() {
        println!("cargo:rustc-env=RUNFLEET_BUILD_COMMIT={commit}");
    }
}
