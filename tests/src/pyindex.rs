//! A PEP 503 "simple" package index on 127.0.0.1 serving tiny wheels built by the test, so
//! dependency tests never need the internet. Downloads can be held at a gate (to kill a
//! consumer in the middle of an install) and are counted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

const BUILD_WHEELS: &str = r#"
import base64, hashlib, json, os, sys, zipfile
out, spec = sys.argv[1], json.loads(sys.argv[2])
for name, version, deps in spec:
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {d}\n" for d in deps),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: runfleet-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(os.path.join(out, f"{dist}-{version}-py3-none-any.whl"), "w") as z:
        for path, text in files.items():
            data = text.encode()
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
"#;

/// A package to serve: name, version, `Requires-Dist` lines.
pub type Package<'a> = (&'a str, &'a str, &'a [&'a str]);

struct Shared {
    dir: PathBuf,
    owned: bool,
    gate: watch::Receiver<bool>,
    downloads: AtomicUsize,
    waiting: AtomicUsize,
}

/// A running local index.
pub struct PyIndex {
    /// `http://127.0.0.1:PORT/simple`.
    pub url: String,
    shared: Arc<Shared>,
    gate: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

fn normalize(name: &str) -> String {
    runfleet_common::requirements::normalize_name(name)
}

async fn project(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let wanted = normalize(name.trim_end_matches('/'));
    let mut links = String::new();
    let Ok(entries) = std::fs::read_dir(&s.dir) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let project = file.split('-').next().unwrap_or_default();
        if normalize(project) == wanted {
            let hash = runfleet_common::hash::sha256_hex(&std::fs::read(e.path()).unwrap());
            links.push_str(&format!(
                "<a href=\"/files/{file}#sha256={hash}\">{file}</a><br>\n"
            ));
        }
    }
    if links.is_empty() {
        return StatusCode::NOT_FOUND.into_response();
    }
    Html(format!(
        "<!DOCTYPE html><html><body>\n{links}</body></html>\n"
    ))
    .into_response()
}

async fn file(State(s): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    s.waiting.fetch_add(1, Ordering::SeqCst);
    let mut gate = s.gate.clone();
    let _ = gate.wait_for(|open| *open).await;
    s.waiting.fetch_sub(1, Ordering::SeqCst);
    match std::fs::read(s.dir.join(&file)) {
        Ok(bytes) if !file.contains('/') => {
            s.downloads.fetch_add(1, Ordering::SeqCst);
            ([("content-type", "application/octet-stream")], bytes).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

impl PyIndex {
    /// Builds the wheels and serves them.
    pub async fn start(packages: &[Package<'_>]) -> PyIndex {
        let dir = std::env::temp_dir().join(format!(
            "runfleet-pyindex-{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let spec: Vec<(String, String, Vec<String>)> = packages
            .iter()
            .map(|(n, v, d)| {
                (
                    n.to_string(),
                    v.to_string(),
                    d.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect();
        let status = std::process::Command::new("python3")
            .args(["-c", BUILD_WHEELS])
            .arg(&dir)
            .arg(serde_json::to_string(&spec).unwrap())
            .status()
            .expect("python3 builds the test wheels");
        assert!(status.success(), "building test wheels failed");
        Self::serve(dir, true).await
    }

    /// Serves the wheels already in `dir` (removed on drop only when `owned`).
    pub async fn serve(dir: PathBuf, owned: bool) -> PyIndex {
        let (gate, gate_rx) = watch::channel(true);
        let shared = Arc::new(Shared {
            dir,
            owned,
            gate: gate_rx,
            downloads: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/simple/{name}/", get(project))
            .route("/simple/{name}", get(project))
            .route("/files/{file}", get(file))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/simple", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PyIndex {
            url,
            shared,
            gate,
            server,
        }
    }

    /// Holds (false) or releases (true) file downloads.
    pub fn set_gate(&self, open: bool) {
        let _ = self.gate.send(open);
    }

    /// Wheel downloads served so far.
    pub fn downloads(&self) -> usize {
        self.shared.downloads.load(Ordering::SeqCst)
    }

    /// Downloads waiting at the gate now.
    pub fn waiting(&self) -> usize {
        self.shared.waiting.load(Ordering::SeqCst)
    }

    /// Stops serving: later requests are refused.
    pub fn stop(&self) {
        self.server.abort();
    }
}

impl Drop for PyIndex {
    fn drop(&mut self) {
        self.server.abort();
        if self.shared.owned {
            let _ = std::fs::remove_dir_all(&self.shared.dir);
        }
    }
}

/// Counts of a few metrics from a `/metrics` text.
pub fn metric_values(text: &str, names: &[&str]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        if names.contains(&key) {
            out.insert(key.to_string(), value.parse().unwrap_or(0.0));
        }
    }
    out
}
