//! The fleet's API as tests call it: JSON requests with the fleet's admin token, scripts
//! and runs in one call, waiting for a run to finish, and its event stream.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Fleet;

impl Fleet {
    /// `GET path` → (status, JSON body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` with a JSON body → (status, JSON body).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// `PUT path` with a JSON body → (status, JSON body).
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    /// `DELETE path` → (status, JSON body or null).
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Registers a script; panics unless 200/201.
    pub async fn register(&self, name: &str, content: &str) -> Value {
        let (status, body) = self
            .post(
                "/scripts",
                &serde_json::json!({"name": name, "content": content}),
            )
            .await;
        assert!(
            status == 201 || status == 200,
            "register {name}: {status} {body}"
        );
        body
    }

    /// Submits a run; panics unless 202. Returns the run id.
    pub async fn submit(&self, body: Value) -> String {
        let (status, run) = self.post("/runs", &body).await;
        assert_eq!(status, 202, "submit: {run}");
        run["id"].as_str().unwrap().to_string()
    }

    /// Polls until the run is in a final status; panics after `limit`.
    pub async fn wait_final(&self, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (status, run) = self.get(&format!("/runs/{id}")).await;
            assert_eq!(status, 200, "{run}");
            if matches!(
                run["status"].as_str(),
                Some("succeeded" | "failed" | "timed_out" | "cancelled" | "dead")
            ) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} not final after {limit:?}: {run}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens `GET /runs/{id}/events` with `token` (the admin's when None); panics unless
    /// 200 with `text/event-stream`.
    pub async fn events(&self, id: &str, token: Option<&str>) -> EventStream {
        let response = reqwest::Client::new()
            .get(format!("{}/runs/{id}/events", self.base))
            .bearer_auth(token.unwrap_or(&self.admin_token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "events of {id}");
        let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        EventStream {
            response,
            buffer: String::new(),
        }
    }
}

/// A server-sent event stream, read one event at a time.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    /// The next event as (name, JSON data); None when the stream ended. Comments
    /// (keep-alives) are skipped. Panics when nothing comes within `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<(String, Value)> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(cut) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..cut + 2).collect();
                let mut name = "message".to_string();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let value = serde_json::from_str(&data.join("\n"))
                    .unwrap_or_else(|e| panic!("event {name} data is not JSON ({e}): {data:?}"));
                return Some((name, value));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {limit:?}"))
                .expect("read the event stream");
            match chunk {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }
}
