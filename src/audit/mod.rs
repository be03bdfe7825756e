//! The audit log: who changed what, when, in a hash chain that shows tampering.
//!
//! - [`append`] writes an entry in the same transaction as the change it records (registry writes,
//!   tokens, the test reset; sync summaries are written by [`crate::store::syncs`] as `system`). The actor
//!   and request id come from [`current`]: the HTTP layer runs each request inside [`scope`]; other
//!   writers name themselves (`cli`, `bootstrap`, `system`).
//! - The tables and the chain ([`crate::store::audit`]): each entry's hash covers its canonical form and
//!   the previous entry's hash. SQLite chains an entry as it is inserted (one writer at a time);
//!   PostgreSQL inserts entries unchained and [`checkpoint::run`] chains committed ones every second in
//!   order under an advisory lock (so writers never wait on one another, as with the change log).
//! - The database refuses updates and deletes of chained entries and of checkpoints (triggers).
//! - [`checkpoint`]: the server signs the chain's head with its Ed25519 key (kept in the data
//!   directory), so a truncated log, or one rewritten and re-chained by someone who can write the
//!   database, no longer matches a signed checkpoint.
//! - [`verify`] walks the chain and the checkpoints and names the first bad entry (`modelcat audit
//!   verify`, [`cli`]).
//!
//! No entry holds a secret: tokens appear by id and name, entities by kind and id, content by digest.

pub mod checkpoint;
pub mod cli;
pub mod verify;

pub use crate::store::audit::{Actor, Record};
use crate::store::sql::{DbError, Dialect, Transaction};

tokio::task_local! {
    static ACTOR: Actor;
}

/// The actor of the task's request, or `system` outside any.
pub fn current() -> Actor {
    ACTOR.try_with(Clone::clone).unwrap_or_else(|_| Actor::named("system"))
}

/// Runs `future` with `actor` as [`current`].
pub async fn scope<F: std::future::Future>(actor: Actor, future: F) -> F::Output {
    ACTOR.scope(actor, future).await
}

/// Appends `record` for [`current`] inside `transaction`.
pub async fn append(transaction: &mut dyn Transaction, dialect: Dialect, record: Record) -> Result<(), DbError> {
    crate::store::audit::append(transaction, dialect, current(), record).await
}
