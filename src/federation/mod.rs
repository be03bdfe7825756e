//! Federation: other registries as catalog sources, and the change feed that lets them follow this one.
//!
//! - [`wire`]: the feed's format (changes, pages, snapshot lines, cursors carrying the log epoch).
//! - [`feed`]: the feed this instance serves (`/api/modelcat/v1`, see [`crate::api::federation`]), read
//!   from the change log and the search index.
//! - [`PeerSource`]: a `peer` source, synced on the one replica holding its lease, its records kept in the
//!   store ([`store`]) so every replica's catalog and this instance's own feed carry them.
//! - [`client`] and [`kubeflow`]: reading a peer over HTTP (a modelcat feed; a Kubeflow catalog or
//!   registry, polled).
//!
//! **Loops.** Every instance has a persistent id ([`crate::store::instance_id`]). A record taken from a
//! peer carries its origin chain (instance and source of every hop, in its `origin_*` properties). A
//! consumer names itself when it asks (`exclude`) and a feed never hands it records whose chain names it,
//! nor records past its hop limit; and a write that changes nothing appends nothing to the change log. So
//! A → B → A and A → B → C → A settle with one copy of each record and logs that stop growing.

pub mod client;
pub mod feed;
pub mod kubeflow;
mod peer;
pub mod store;
pub mod wire;

pub use peer::{PeerSource, content_hash_text};
