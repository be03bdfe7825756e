//! `modelcat token …`: create, list and revoke API tokens in the store the server uses, and generate a
//! token for `MODELCAT_ADMIN_TOKEN`.
//!
//! A created token's plaintext goes to stdout once (so `TOKEN=$(modelcat token create …)` works) and
//! is never stored; what it is goes to stderr.

use super::Role;
use super::token::Plaintext;
use super::tokens::{self, NewToken, TokenRecord};
use crate::config::StoreArgs;
use crate::store::now_millis;

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Creates a token and prints it once.
    Create {
        /// What the token is for (shown in lists).
        #[arg(long)]
        name: String,
        /// What it may do.
        #[arg(long, value_enum, default_value = "viewer")]
        role: Role,
        /// Days until it stops working [default: never].
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Restricts the token to this registered model, by name (repeat for several) [default: every
        /// model its role allows].
        #[arg(long = "model", value_name = "NAME")]
        models: Vec<String>,
        /// Restricts the token's catalog reads to this source, by id (repeat for several); it then cannot
        /// use the Hub API or the change feed [default: every source].
        #[arg(long = "source", value_name = "ID")]
        sources: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Lists tokens (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revokes a token by id.
    Revoke {
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Prints a new well-formed token without storing it (for `MODELCAT_ADMIN_TOKEN`).
    Generate,
}

/// Runs a command; its writes are audited as `cli`.
pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
    crate::audit::scope(crate::audit::Actor::named("cli"), execute(command)).await
}

async fn execute(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { name, role, expires_in_days, models, sources, store } => {
            anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
            anyhow::ensure!(models.iter().all(|model| !model.trim().is_empty()), "--model must not be empty");
            anyhow::ensure!(sources.iter().all(|source| !source.trim().is_empty()), "--source must not be empty");
            let backend = store.connect().await?;
            let expires_at = expires_in_days.map(|days| now_millis() + i64::from(days) * 86_400_000);
            let models = (!models.is_empty()).then_some(models);
            let sources = (!sources.is_empty()).then_some(sources);
            let token = NewToken { name, role, expires_at, created_by: "cli".to_owned(), models, sources };
            let (record, secret) = tokens::create(&*backend, &token).await?;
            eprintln!("created token {} ({}, {}); it is shown only this once:", record.id, record.name, role.as_str());
            println!("{}", secret.expose());
        }
        TokenCommand::List { store } => {
            let backend = store.connect().await?;
            println!("{:>5}  {:<10} {:<9} {:<9} {:<24} name", "id", "prefix", "role", "state", "last used");
            for record in tokens::list(&*backend).await? {
                println!("{}", line(&record));
            }
        }
        TokenCommand::Revoke { id, store } => {
            let backend = store.connect().await?;
            let record = tokens::revoke(&*backend, id).await?;
            let record = record.ok_or_else(|| anyhow::anyhow!("no token with id {id}"))?;
            eprintln!("revoked token {} ({}); replicas stop accepting it within 5 s", record.id, record.name);
        }
        TokenCommand::Generate => println!("{}", Plaintext::generate().expose()),
    }
    Ok(())
}

fn line(record: &TokenRecord) -> String {
    let state = match record.usability(now_millis()) {
        tokens::Usability::Usable => "active",
        tokens::Usability::Expired => "expired",
        tokens::Usability::Revoked => "revoked",
    };
    let used = record.last_used_at.map_or_else(|| "never".to_owned(), |at| format!("{}", at / 1000));
    format!(
        "{:>5}  {:<10} {:<9} {:<9} {:<24} {}",
        record.id,
        record.prefix,
        record.role.as_str(),
        state,
        used,
        record.name
    )
}
