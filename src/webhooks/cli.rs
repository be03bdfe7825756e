//! `modelcat webhook …`: list, create, delete and rotate webhook subscriptions in the store the server
//! uses (as the API does, audited as `cli`), and read a subscription's delivery log.
//!
//! A new or rotated secret goes to stdout once (so `SECRET=$(modelcat webhook create …)` works); what
//! was done goes to stderr.

use super::store::{SubscriptionDraft, WebhookStore};
use crate::config::StoreArgs;
use crate::store::outbox::EventType;

#[derive(Debug, clap::Subcommand)]
pub enum WebhookCommand {
    /// Subscribes an endpoint and prints its signing secret once.
    Create {
        /// Where deliveries go (http or https; see webhooks.allowed_networks for private addresses).
        #[arg(long)]
        url: String,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
        /// An event type to deliver (repeat for several) [default: every type].
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// A catalog source whose models added or removed to announce (repeat for several).
        #[arg(long = "catalog-source", value_name = "ID")]
        catalog_sources: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Lists subscriptions (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Deletes a subscription and its delivery log.
    Delete {
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Gives a subscription a new secret, printed once; the old one keeps signing for
    /// webhooks.rotation_window_hours.
    RotateSecret {
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Prints a subscription's latest deliveries with their attempts.
    Deliveries {
        id: i64,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs a command; its writes are audited as `cli`.
pub async fn run(command: WebhookCommand) -> anyhow::Result<()> {
    crate::audit::scope(crate::audit::Actor::named("cli"), execute(command)).await
}

async fn execute(command: WebhookCommand) -> anyhow::Result<()> {
    match command {
        WebhookCommand::Create { url, description, events, catalog_sources, store } => {
            let settings = store.settings()?;
            let url = settings.webhooks.destinations().check_url(&url).map_err(anyhow::Error::msg)?.to_string();
            let event_types = events
                .iter()
                .map(|text| EventType::parse(text).ok_or_else(|| anyhow::anyhow!("unknown event type {text:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let draft = SubscriptionDraft {
                url: Some(url),
                description: Some(description),
                event_types: Some(event_types),
                catalog_sources: Some(super::check_catalog_sources(catalog_sources).map_err(anyhow::Error::msg)?),
                enabled: None,
            };
            let created = WebhookStore::new(store.connect().await?).create(draft).await?;
            eprintln!("created webhook {}; its secret is shown only this once:", created.subscription.id);
            println!("{}", created.secret);
        }
        WebhookCommand::List { store } => {
            println!("{:>5}  {:<8} {:<40} url", "id", "state", "events");
            for subscription in WebhookStore::new(store.connect().await?).list().await? {
                let events = if subscription.event_types.is_empty() {
                    "all".to_owned()
                } else {
                    subscription.event_types.join(",")
                };
                let state = if subscription.enabled { "enabled" } else { "disabled" };
                println!("{:>5}  {state:<8} {events:<40} {}", subscription.id, subscription.url);
            }
        }
        WebhookCommand::Delete { id, store } => {
            WebhookStore::new(store.connect().await?).delete(id).await?;
            eprintln!("deleted webhook {id}");
        }
        WebhookCommand::RotateSecret { id, store } => {
            let window = store.settings()?.webhooks.rotation_window();
            let rotated = WebhookStore::new(store.connect().await?).rotate(id, window.as_millis() as i64).await?;
            eprintln!(
                "rotated the secret of webhook {id}; the previous one also signs for {} hours; the new one:",
                window.as_secs() / 3600
            );
            println!("{}", rotated.secret);
        }
        WebhookCommand::Deliveries { id, limit, store } => {
            anyhow::ensure!((1..=500).contains(&limit), "--limit must be 1 to 500");
            for delivery in WebhookStore::new(store.connect().await?).deliveries(id, limit).await? {
                println!(
                    "{:>6}  {:<10} {:<36} {} attempts, last status {}",
                    delivery.id,
                    delivery.state,
                    delivery.event_type,
                    delivery.attempts,
                    delivery.last_status.map_or_else(|| "none".to_owned(), |status| status.to_string())
                );
            }
        }
    }
    Ok(())
}
