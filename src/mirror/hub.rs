//! An HTTP client for the Hugging Face Hub's metadata API, made for syncing: six request shapes (list with
//! `expand`, `model_info?blobs=true`, refs, whole small files, ranged reads of safetensors headers), `Link`
//! pagination, and a per-Hub [`Pacer`] that keeps within the Hub's rate limits.
//!
//! Rate limits (`hf-compat.md` §8): every answer's `RateLimit: "api";r=<remaining>;t=<reset seconds>`
//! spreads the remaining requests over the window (one every `t/r` seconds, shared by all requests in
//! flight); `r=0` pauses until the window resets. A 429 pauses everyone for its `Retry-After` (or `t+1`
//! seconds) and is retried. 5xx answers, timeouts and connection failures are retried with capped
//! exponential backoff and jitter. Any other 4xx fails the request at once.
//!
//! reqwest (not the `hf-hub` crate) is used because the sync needs `expand` on lists, `blobs=true`,
//! ranged reads, raw JSON kept as served, and its own pacing, none of which `hf-hub` offers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RANGE, RETRY_AFTER};
use serde_json::Value as Json;
use tokio::sync::Mutex;

/// Characters left as they are in a path segment (the rest is percent-encoded).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Why a Hub request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HubError {
    /// 404 (or `X-Error-Code` `RepoNotFound`/`EntryNotFound`/`RevisionNotFound`).
    #[error("not found on the Hub: {0}")]
    NotFound(String),
    /// The repo is gated or private and this client may not read it.
    #[error("access denied by the Hub ({0})")]
    Denied(String),
    #[error("the Hub answered {status} for {url}: {message}")]
    Status { status: u16, url: String, message: String },
    #[error("request to {url} failed: {message}")]
    Transport { url: String, message: String },
    #[error("unexpected answer from {url}: {message}")]
    Decode { url: String, message: String },
}

/// Retry settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request for 5xx, timeouts and connection failures.
    pub attempts: u32,
    /// Attempts per request that may end in 429.
    pub rate_limited_attempts: u32,
    /// The first backoff; each retry doubles it, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            rate_limited_attempts: 10,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

/// One Hub's request budget, shared by every request to it.
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<PaceState>,
}

#[derive(Debug)]
struct PaceState {
    /// No request starts before this instant.
    not_before: Instant,
    /// The spacing the last `RateLimit` header asked for.
    interval: Duration,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer { state: Mutex::new(PaceState { not_before: Instant::now(), interval: Duration::ZERO }) }
    }
}

impl Pacer {
    /// Waits for this request's turn.
    async fn wait(&self) {
        let wait = {
            let mut state = self.state.lock().await;
            let now = Instant::now();
            let start = state.not_before.max(now);
            state.not_before = start + state.interval;
            start - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Reads the `RateLimit` header of an answer.
    async fn observe(&self, headers: &HeaderMap) {
        let Some((remaining, reset)) = rate_limit(headers) else { return };
        let mut state = self.state.lock().await;
        if remaining == 0 {
            state.not_before = state.not_before.max(Instant::now() + Duration::from_secs(reset + 1));
        } else {
            state.interval = Duration::from_secs_f64(reset as f64 / remaining as f64);
        }
    }

    /// Holds every request back for `delay`.
    async fn pause(&self, delay: Duration) {
        let mut state = self.state.lock().await;
        state.not_before = state.not_before.max(Instant::now() + delay);
    }
}

/// `(remaining, reset seconds)` from `RateLimit: "api";r=42;t=17`.
fn rate_limit(headers: &HeaderMap) -> Option<(u64, u64)> {
    let value = headers.get("ratelimit")?.to_str().ok()?;
    let field = |name: &str| {
        value.split(';').find_map(|part| part.trim().strip_prefix(name)?.strip_prefix('=')?.trim().parse().ok())
    };
    Some((field("r")?, field("t")?))
}

/// A client for one Hub.
#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    pacer: Arc<Pacer>,
    retry: RetryPolicy,
    requests: Arc<AtomicU64>,
}

/// A listed model: what `expand=sha&expand=lastModified&expand=trendingScore&expand=downloadsAllTime`
/// returns. The last two are in no `model_info` document, so the sync keeps them from the listing.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Listed {
    pub id: String,
    pub sha: Option<String>,
    #[serde(rename = "lastModified")]
    pub last_modified: Option<String>,
    #[serde(rename = "trendingScore")]
    pub trending_score: Option<serde_json::Number>,
    #[serde(rename = "downloadsAllTime")]
    pub downloads_all_time: Option<serde_json::Number>,
}

impl Listed {
    /// The listing-only fields, as `model_info` keys.
    pub fn list_only_fields(&self) -> impl Iterator<Item = (&'static str, &serde_json::Number)> {
        [("trendingScore", &self.trending_score), ("downloadsAllTime", &self.downloads_all_time)]
            .into_iter()
            .filter_map(|(key, value)| value.as_ref().map(|value| (key, value)))
    }
}

impl HubClient {
    /// A client for the Hub at `base` (no trailing slash).
    pub fn new(base: &str, token: Option<String>, retry: RetryPolicy) -> Result<Self, HubError> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("modelcat/", env!("CARGO_PKG_VERSION")))
            .timeout(retry.timeout)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|error| HubError::Transport { url: base.to_owned(), message: error.to_string() })?;
        Ok(HubClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
            pacer: Arc::default(),
            retry,
            requests: Arc::default(),
        })
    }

    /// Requests sent so far (retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Lists models with `query` (e.g. `author`, `search`), following `Link` pagination to the end.
    pub async fn list(&self, query: &[(&str, &str)]) -> Result<Vec<Listed>, HubError> {
        let mut url = reqwest::Url::parse_with_params(&format!("{}/api/models", self.base), query)
            .map_err(|error| HubError::Decode { url: self.base.clone(), message: error.to_string() })?;
        url.query_pairs_mut()
            .append_pair("limit", "1000")
            .append_pair("expand", "sha")
            .append_pair("expand", "lastModified")
            .append_pair("expand", "trendingScore")
            .append_pair("expand", "downloadsAllTime");
        let mut listed = Vec::new();
        let mut next = Some(url.to_string());
        while let Some(url) = next.take() {
            let response = self.send(&url, None).await?;
            next = next_link(response.headers());
            let page: Vec<Listed> = decode_json(&url, response).await?;
            listed.extend(page);
        }
        Ok(listed)
    }

    /// A model's `model_info` document with file sizes and hashes (`blobs=true`), as served.
    pub async fn model_info(&self, repo_id: &str) -> Result<(String, Json), HubError> {
        let url = format!("{}/api/models/{repo_id}?blobs=true", self.base);
        let text = self.text(&url).await?;
        let json = serde_json::from_str(&text).map_err(|error| HubError::Decode { url, message: error.to_string() })?;
        Ok((text, json))
    }

    /// A model's refs document.
    pub async fn refs(&self, repo_id: &str) -> Result<String, HubError> {
        self.text(&format!("{}/api/models/{repo_id}/refs", self.base)).await
    }

    /// A whole file at a revision.
    pub async fn file(&self, repo_id: &str, revision: &str, path: &str) -> Result<Vec<u8>, HubError> {
        let url = self.resolve_url(repo_id, revision, path);
        let response = self.send(&url, None).await?;
        bytes(&url, response).await
    }

    /// The header of a safetensors file: its 8-byte length prefix and JSON, read with at most two ranged
    /// requests (as `huggingface_hub` does). Headers over `limit` bytes are refused.
    pub async fn safetensors_header(
        &self,
        repo_id: &str,
        revision: &str,
        path: &str,
        limit: u64,
    ) -> Result<Vec<u8>, HubError> {
        const FIRST_READ: u64 = 100_000;
        let url = self.resolve_url(repo_id, revision, path);
        let response = self.send(&url, Some((0, FIRST_READ))).await?;
        let mut head = bytes(&url, response).await?;
        let invalid = |message: String| HubError::Decode { url: url.clone(), message };
        let length = head
            .get(..8)
            .map(|prefix| u64::from_le_bytes(prefix.try_into().expect("eight bytes")))
            .ok_or_else(|| invalid("shorter than a safetensors length prefix".into()))?;
        if length > limit {
            return Err(invalid(format!("safetensors header of {length} bytes is over the {limit}-byte limit")));
        }
        let total = 8 + length as usize;
        if head.len() < total {
            let response = self.send(&url, Some((0, total as u64 - 1))).await?;
            head = bytes(&url, response).await?;
        }
        if head.len() < total {
            return Err(invalid(format!("the header needs {total} bytes, the Hub sent {}", head.len())));
        }
        head.truncate(total);
        Ok(head)
    }

    fn resolve_url(&self, repo_id: &str, revision: &str, path: &str) -> String {
        let path: Vec<String> =
            path.split('/').map(|segment| utf8_percent_encode(segment, SEGMENT).to_string()).collect();
        let revision = utf8_percent_encode(revision, SEGMENT);
        format!("{}/{repo_id}/resolve/{revision}/{}", self.base, path.join("/"))
    }

    async fn text(&self, url: &str) -> Result<String, HubError> {
        let response = self.send(url, None).await?;
        response.text().await.map_err(|error| HubError::Transport { url: url.to_owned(), message: error.to_string() })
    }

    /// Sends a GET, pacing and retrying as the module docs describe; answers with a success response.
    async fn send(&self, url: &str, range: Option<(u64, u64)>) -> Result<reqwest::Response, HubError> {
        let (mut failures, mut limited) = (0u32, 0u32);
        loop {
            self.pacer.wait().await;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut request = self.http.get(url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some((start, end)) = range {
                request = request.header(RANGE, format!("bytes={start}-{end}"));
            }
            let outcome = request.send().await;
            let failure = match outcome {
                Ok(response) => {
                    self.pacer.observe(response.headers()).await;
                    let status = response.status();
                    if status.is_success() {
                        return Ok(response);
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        limited += 1;
                        let wait = retry_after(response.headers())
                            .or_else(|| rate_limit(response.headers()).map(|(_, reset)| Duration::from_secs(reset + 1)))
                            .unwrap_or_else(|| self.backoff(limited));
                        tracing::warn!(url, wait_ms = wait.as_millis() as u64, "Hub rate limit reached: pausing");
                        self.pacer.pause(wait).await;
                        if limited < self.retry.rate_limited_attempts {
                            continue;
                        }
                        return Err(status_error(url, response).await);
                    }
                    if !(status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT) {
                        return Err(status_error(url, response).await);
                    }
                    status_error(url, response).await
                }
                Err(error) => HubError::Transport { url: url.to_owned(), message: error.to_string() },
            };
            failures += 1;
            if failures >= self.retry.attempts {
                return Err(failure);
            }
            let wait = self.backoff(failures);
            tracing::debug!(url, error = %failure, wait_ms = wait.as_millis() as u64, "retrying a Hub request");
            tokio::time::sleep(wait).await;
        }
    }

    /// Exponential backoff with ±25% jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let base =
            self.retry.base_delay.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(self.retry.max_delay);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let jitter = 0.75 + f64::from(nanos % 1000) / 2000.0;
        base.mul_f64(jitter)
    }
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let next = params.split(';').any(|param| matches!(param.trim(), "rel=\"next\"" | "rel=next"));
        next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

async fn status_error(url: &str, response: reqwest::Response) -> HubError {
    let status = response.status();
    let code = response.headers().get("x-error-code").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let message = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Json>(&message)
        .ok()
        .and_then(|body| body.get("error").and_then(Json::as_str).map(str::to_owned))
        .unwrap_or(message);
    match code.as_deref() {
        Some("GatedRepo") => HubError::Denied(format!("gated: {message}")),
        Some("RepoNotFound" | "EntryNotFound" | "RevisionNotFound") => HubError::NotFound(url.to_owned()),
        _ if status == StatusCode::NOT_FOUND => HubError::NotFound(url.to_owned()),
        _ if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN => HubError::Denied(message),
        _ => HubError::Status { status: status.as_u16(), url: url.to_owned(), message },
    }
}

async fn bytes(url: &str, response: reqwest::Response) -> Result<Vec<u8>, HubError> {
    let body = response.bytes().await;
    body.map(|bytes| bytes.to_vec())
        .map_err(|error| HubError::Transport { url: url.to_owned(), message: error.to_string() })
}

async fn decode_json<T: serde::de::DeserializeOwned>(url: &str, response: reqwest::Response) -> Result<T, HubError> {
    let body = bytes(url, response).await?;
    serde_json::from_slice(&body).map_err(|error| HubError::Decode { url: url.to_owned(), message: error.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn reads_rate_limit_and_link_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit", HeaderValue::from_static("\"api\";r=42;t=17"));
        headers.insert(
            reqwest::header::LINK,
            HeaderValue::from_static("<http://hub/api/models?cursor=abc&limit=2>; rel=\"next\""),
        );
        assert_eq!(rate_limit(&headers), Some((42, 17)));
        assert_eq!(next_link(&headers).as_deref(), Some("http://hub/api/models?cursor=abc&limit=2"));
        headers.insert(reqwest::header::LINK, HeaderValue::from_static("<http://hub/x>; rel=\"prev\""));
        assert_eq!(next_link(&headers), None);
    }

    #[tokio::test]
    async fn pacer_spreads_the_remaining_budget() {
        let pacer = Pacer::default();
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit", HeaderValue::from_static("\"api\";r=20;t=1"));
        pacer.observe(&headers).await;
        let started = Instant::now();
        for _ in 0..4 {
            pacer.wait().await;
        }
        // Four requests at one per 50 ms: the last starts about 150 ms after the first.
        assert!(started.elapsed() >= Duration::from_millis(140), "{:?}", started.elapsed());
    }
}
