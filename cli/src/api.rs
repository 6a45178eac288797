//! The HTTP client of the runfleet API, and the one-line error every failure becomes.

use std::time::Duration;

use serde_json::Value;

/// One line for the user: what failed and what to do. The CLI prints it and exits 2.
#[derive(Debug)]
pub struct CliError(pub String);

impl From<reqwest::Error> for CliError {
    fn from(e: reqwest::Error) -> Self {
        CliError(format!(
            "cannot reach the runfleet API: {e} (set --url or RUNFLEET_URL)"
        ))
    }
}

/// A client bound to one API base URL and token.
pub struct Api {
    base: String,
    http: reqwest::Client,
    /// For event streams: no total time limit, only between reads (the server sends a
    /// keep-alive every 15 s).
    streaming: reqwest::Client,
}

/// Percent-encodes everything but unreserved URL characters (path segments and query
/// values given by the user).
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Api {
    /// A client for `base`, sending `token` as `Authorization: Bearer` when given.
    pub fn new(base: &str, token: Option<&str>) -> Result<Api, CliError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| {
                    CliError(
                        "RUNFLEET_TOKEN / --token holds characters a header cannot carry".into(),
                    )
                })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .default_headers(headers.clone())
                .build()?,
            streaming: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(60))
                .default_headers(headers)
                .build()?,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let resp = req.send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        Err(refusal(&self.base, status, &body))
    }

    /// Reads the server-sent events of `GET path`, handing each (name, data) to
    /// `on_event` until it returns false or the stream ends (Ok(false): it ended first).
    pub async fn events(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, Value) -> bool,
    ) -> Result<bool, CliError> {
        let mut resp = self
            .streaming
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            return Err(refusal(&self.base, status, &body));
        }
        let mut buffer = String::new();
        while let Some(bytes) = resp.chunk().await? {
            buffer.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(cut) = buffer.find("\n\n") {
                let block: String = buffer.drain(..cut + 2).collect();
                let mut name = "message";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !data.is_empty() {
                            data.push('\n');
                        }
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive
                }
                let value = serde_json::from_str(&data).map_err(|e| {
                    CliError(format!("the API sent an event that is not JSON ({e})"))
                })?;
                if !on_event(name, value) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }
}

/// The one line for an API answer that is not a success.
fn refusal(base: &str, status: reqwest::StatusCode, body: &Value) -> CliError {
    let err = &body["error"];
    if !err.is_object() {
        // Not the API's error shape: a proxy's error page, or another server at that URL.
        return CliError(format!(
            "{base} answered {status} without a runfleet error: check that --url or \
             RUNFLEET_URL points at the runfleet API (and, behind a proxy, that the API is up)"
        ));
    }
    let mut line = format!(
        "{} ({}): {}",
        err["code"].as_str().unwrap_or("error"),
        status.as_u16(),
        err["message"]
            .as_str()
            .unwrap_or("the API refused the request")
    );
    if let Some(field) = err["field"].as_str() {
        line.push_str(&format!(" [field: {field}]"));
    }
    if status.as_u16() == 401 {
        line.push_str(" (set --token or RUNFLEET_TOKEN)");
    }
    CliError(line)
}
