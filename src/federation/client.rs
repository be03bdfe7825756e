//! The HTTP client of a peer source: another modelcat's feed and snapshot, and the two Kubeflow APIs.
//!
//! The bearer token is read from its environment variable or file at every request (so a rotated file
//! is picked up) and is never part of an error: errors name the peer's URL and path, the status and the
//! peer's own message.

use std::time::Duration;

use modelcat_sources::peer::{PeerParams, TokenFrom};

use super::wire::{Event, Page, SnapshotEnd, SnapshotLine};

/// How long one request may take, on top of a long poll's wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request to a peer failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PeerError {
    /// The feed cannot continue from the cursor: take a snapshot.
    #[error("the peer cannot continue from the stored cursor ({0})")]
    Gone(String),
    #[error("{url} answered {status}: {message}")]
    Status { url: String, status: u16, message: String },
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// A client for one peer.
#[derive(Debug, Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    base: String,
    token: Option<TokenFrom>,
}

impl PeerClient {
    pub fn new(params: &PeerParams) -> Result<PeerClient, PeerError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("modelcat/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5));
        if let Some(path) = &params.ca_file {
            let pem = std::fs::read(path)
                .map_err(|error| PeerError::Invalid(format!("cannot read caFile {}: {error}", path.display())))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
                PeerError::Invalid(format!("caFile {} holds no PEM certificate: {error}", path.display()))
            })?;
            builder = builder.tls_certs_merge(certificates);
        }
        let http =
            builder.build().map_err(|error| PeerError::Invalid(format!("cannot build the HTTP client: {error}")))?;
        Ok(PeerClient { http, base: params.url.clone(), token: params.token.clone() })
    }

    fn token(&self) -> Result<Option<String>, PeerError> {
        match &self.token {
            None => Ok(None),
            Some(TokenFrom::Env(var)) => match std::env::var(var) {
                Ok(token) if !token.trim().is_empty() => Ok(Some(token.trim().to_owned())),
                _ => Err(PeerError::Invalid(format!("the token variable {var} is not set"))),
            },
            Some(TokenFrom::File(path)) => match std::fs::read_to_string(path) {
                Ok(token) if !token.trim().is_empty() => Ok(Some(token.trim().to_owned())),
                Ok(_) => Err(PeerError::Invalid(format!("the token file {} is empty", path.display()))),
                Err(error) => {
                    Err(PeerError::Invalid(format!("cannot read the token file {}: {error}", path.display())))
                }
            },
        }
    }

    /// GETs `path` with `query`; a non-2xx answer is an error carrying the peer's message.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        timeout: Duration,
    ) -> Result<reqwest::Response, PeerError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.get(&url).query(query).timeout(timeout);
        if let Some(token) = self.token()? {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|error| PeerError::Transport { url: url.clone(), message: without_url(&error) })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let parsed: Option<serde_json::Value> = serde_json::from_str(&body).ok();
        let message = parsed
            .as_ref()
            .and_then(|body| body.get("message").or(body.get("error")).and_then(|message| message.as_str()))
            .map_or_else(|| status.canonical_reason().unwrap_or("error").to_owned(), str::to_owned);
        if status == reqwest::StatusCode::GONE {
            return Err(PeerError::Gone(message));
        }
        Err(PeerError::Status { url, status: status.as_u16(), message })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        timeout: Duration,
    ) -> Result<T, PeerError> {
        let response = self.get(path, query, timeout).await?;
        let url = response.url().to_string();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| PeerError::Transport { url: url.clone(), message: without_url(&error) })?;
        serde_json::from_slice(&bytes)
            .map_err(|error| PeerError::Invalid(format!("{url} sent an unreadable answer: {error}")))
    }

    /// One long poll of a modelcat feed.
    pub async fn changes(&self, query: &[(&str, String)], wait: Duration) -> Result<Page, PeerError> {
        self.json("/api/modelcat/v1/changes", query, wait + REQUEST_TIMEOUT).await
    }

    /// Starts reading a modelcat snapshot.
    pub async fn snapshot(&self, query: &[(&str, String)]) -> Result<SnapshotReader, PeerError> {
        let response = self.get("/api/modelcat/v1/snapshot", query, Duration::from_secs(3600)).await?;
        Ok(SnapshotReader { response, buffer: Vec::new(), end: None })
    }

    /// A GET of a JSON document under the peer's base URL (the Kubeflow protocols).
    pub async fn document(&self, path: &str, query: &[(&str, String)]) -> Result<serde_json::Value, PeerError> {
        self.json(path, query, REQUEST_TIMEOUT).await
    }
}

/// reqwest's message without the URL it appends (the caller names the URL once).
fn without_url(error: &reqwest::Error) -> String {
    let mut error = error.to_string();
    if let Some(start) = error.find(" for url (") {
        error.truncate(start);
    }
    error
}

/// A snapshot being read line by line.
pub struct SnapshotReader {
    response: reqwest::Response,
    buffer: Vec<u8>,
    end: Option<SnapshotEnd>,
}

impl SnapshotReader {
    /// Up to `count` more records; empty once the end line was read. A stream that stops before its end
    /// line is an error (the snapshot was cut short).
    pub async fn next_batch(&mut self, count: usize) -> Result<Vec<Event>, PeerError> {
        let mut batch = Vec::new();
        while batch.len() < count && self.end.is_none() {
            if let Some(newline) = memchr::memchr(b'\n', &self.buffer) {
                let line: Vec<u8> = self.buffer.drain(..=newline).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<SnapshotLine>(&line) {
                    Ok(SnapshotLine::Record(event)) => batch.push(event),
                    Ok(SnapshotLine::End { end }) => self.end = Some(end),
                    Err(error) => return Err(PeerError::Invalid(format!("unreadable snapshot line: {error}"))),
                }
                continue;
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return Err(PeerError::Invalid("the snapshot was cut short (no end line)".into())),
                Err(error) => {
                    return Err(PeerError::Transport {
                        url: self.response.url().to_string(),
                        message: without_url(&error),
                    });
                }
            }
        }
        Ok(batch)
    }

    /// The end line, once read.
    pub fn end(&self) -> Option<&SnapshotEnd> {
        self.end.as_ref()
    }
}
