//! Sends due deliveries: claims a batch, posts each signed payload, records the outcome, and schedules
//! retries; prunes old deliveries and events once an hour. One dispatcher runs in every server process;
//! claims keep two from sending one delivery at once.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::WebhookSettings;
use super::signing::signature;
use super::store::{Due, Outcome, WebhookStore};
use crate::store::now_millis;

/// Deliveries claimed per round.
const BATCH: i64 = 32;

/// Runs until the process ends.
pub async fn run(store: WebhookStore, settings: WebhookSettings) {
    let client = settings.destinations().client(Duration::from_secs(settings.timeout_secs));
    let claim_ms = (settings.timeout_secs as i64 + 5) * 1000;
    let poll = Duration::from_millis(settings.poll_interval_ms);
    let mut last_prune: Option<Instant> = None;
    loop {
        if last_prune.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
            let before = now_millis() - settings.retention_days as i64 * 86_400_000;
            match store.prune(before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "old webhook events pruned"),
                Err(error) => tracing::warn!(%error, "cannot prune webhook events"),
            }
            last_prune = Some(Instant::now());
        }
        let due = match store.claim_due(BATCH, claim_ms).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot read due webhook deliveries");
                tokio::time::sleep(poll * 5).await;
                continue;
            }
        };
        if due.is_empty() {
            tokio::time::sleep(poll).await;
            continue;
        }
        let outcomes = join_all(due.iter().map(|due| deliver(&client, &settings, due))).await;
        if let Err(error) = store.record(&outcomes).await {
            // The claims expire and the deliveries are attempted again.
            tracing::warn!(%error, "cannot record webhook attempts");
        }
    }
}

/// Sends one delivery; returns it with how the attempt ended and how long it took.
async fn deliver<'a>(client: &reqwest::Client, settings: &WebhookSettings, due: &'a Due) -> (&'a Due, Outcome, i64) {
    let started = Instant::now();
    let timestamp = now_millis() / 1000;
    let request = client
        .post(&due.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &due.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature(&due.keys, &due.event_id, timestamp, due.payload.as_bytes()))
        .body(due.payload.clone());
    let answer = request.send().await;
    let duration_ms = started.elapsed().as_millis() as i64;
    let retry_at = || {
        let retries = &settings.retry_schedule_secs;
        usize::try_from(due.attempts)
            .ok()
            .and_then(|attempt| retries.get(attempt))
            .map(|wait| now_millis() + *wait as i64 * 1000)
    };
    let outcome = match answer {
        Ok(response) if response.status().is_success() => Outcome::Delivered(response.status().as_u16()),
        Ok(response) if response.status() == reqwest::StatusCode::GONE => Outcome::Gone,
        Ok(response) => Outcome::Failed { status: Some(response.status().as_u16()), error: None, retry_at: retry_at() },
        // Without the URL: it may carry a token.
        Err(error) => Outcome::Failed { status: None, error: Some(describe(error)), retry_at: retry_at() },
    };
    match &outcome {
        Outcome::Delivered(_) => {
            tracing::debug!(delivery = due.delivery, subscription = due.subscription, "webhook delivered")
        }
        Outcome::Gone => {
            tracing::warn!(subscription = due.subscription, "webhook endpoint gone: subscription disabled")
        }
        Outcome::Failed { status, error, retry_at } => tracing::info!(
            delivery = due.delivery,
            subscription = due.subscription,
            status = status.unwrap_or(0),
            error = error.as_deref().unwrap_or(""),
            retried = retry_at.is_some(),
            "webhook attempt failed"
        ),
    }
    (due, outcome, duration_ms)
}

/// A transport error's cause chain, without the URL.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
