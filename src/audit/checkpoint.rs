//! Signed checkpoints of the audit chain's head.
//!
//! Each server keeps an Ed25519 key in its data directory (`audit-key`, PKCS#8, mode 0600; the public
//! half in `audit-key.pub` as hex, to hand to whoever verifies), which also signs evidence bundles
//! ([`crate::governance::evidence`]). [`run`] chains pending entries every
//! second and, once per interval when the head moved, signs `(position, hash)` of the head into a
//! checkpoint. The key id is the first 16 hex digits of the public key's SHA-256, so checkpoints of
//! several replicas (each with its own key) can be told apart.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use crate::hex::{decode as unhex, encode as hex};
use crate::store::Backend;
use crate::store::audit::{self as table, Checkpoint};
use crate::store::now_millis;

pub const KEY_FILE: &str = "audit-key";
pub const PUBLIC_KEY_FILE: &str = "audit-key.pub";

/// This server's checkpoint key.
pub struct Signer {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Signer({})", self.key_id)
    }
}

impl Signer {
    /// Reads the key from `data_dir`, creating it (and its public half) on first use.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Signer> {
        let path = data_dir.join(KEY_FILE);
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| std::io::Error::other("cannot generate an Ed25519 key"))?;
                crate::private_file::write(&path, document.as_ref())?;
                document.as_ref().to_vec()
            }
            Err(error) => return Err(error),
        };
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| std::io::Error::other(format!("{} is not an Ed25519 PKCS#8 key", path.display())))?;
        std::fs::write(data_dir.join(PUBLIC_KEY_FILE), format!("{}\n", hex(pair.public_key().as_ref())))?;
        Ok(Signer { key_id: key_id(pair.public_key().as_ref()), pair })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// Signs `message` with the server's key (evidence bundles sign their manifest with it too).
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// A checkpoint of the head `(seq, hash)`.
    pub fn sign(&self, seq: i64, hash: &str) -> Checkpoint {
        let signature = hex(self.pair.sign(message(seq, hash).as_bytes()).as_ref());
        Checkpoint { seq, hash: hash.to_owned(), at: now_millis(), key_id: self.key_id.clone(), signature }
    }
}

/// The id of a public key.
pub fn key_id(public: &[u8]) -> String {
    crate::hex::sha256(public)[..16].to_owned()
}

fn message(seq: i64, hash: &str) -> String {
    format!("modelcat-audit-checkpoint\n{seq}\n{hash}")
}

/// Whether `public` (raw Ed25519 bytes) signed `checkpoint`.
pub fn signed_by(checkpoint: &Checkpoint, public: &[u8]) -> bool {
    let Some(signature) = unhex(&checkpoint.signature) else { return false };
    let message = message(checkpoint.seq, &checkpoint.hash);
    UnparsedPublicKey::new(&ED25519, public).verify(message.as_bytes(), &signature).is_ok()
}

/// How often entries past the retention period are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Chains pending entries every second and checkpoints the head once per `interval` when it moved, for
/// as long as the process runs. With a `retention`, once an hour (and soon after start) it removes the
/// entries older than that, up to the last checkpoint among them ([`table::prune`]).
pub async fn run(backend: Arc<dyn Backend>, signer: Arc<Signer>, interval: Duration, retention: Option<Duration>) {
    let mut last: Option<(Instant, i64)> = None;
    let mut pruned: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Err(error) = table::seal(&*backend).await {
            tracing::warn!(%error, "cannot chain audit entries");
            continue;
        }
        if let Some(retention) = retention
            && pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY)
        {
            pruned = Some(Instant::now());
            let before = now_millis() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
            match table::prune(&*backend, before).await {
                Ok(Some(done)) => {
                    tracing::info!(
                        through = done.through,
                        entries = done.entries,
                        "audit entries past retention removed"
                    );
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot remove audit entries past retention"),
            }
        }
        if last.is_some_and(|(at, _)| at.elapsed() < interval) {
            continue;
        }
        match table::last(&*backend).await {
            Ok((seq, _)) if seq == 0 || last.is_some_and(|(_, done)| done == seq) => {}
            Ok((seq, hash)) => match table::insert_checkpoint(&*backend, &signer.sign(seq, &hash)).await {
                Ok(()) => last = Some((Instant::now(), seq)),
                Err(error) => tracing::warn!(%error, "cannot write an audit checkpoint"),
            },
            Err(error) => tracing::warn!(%error, "cannot read the audit log's head"),
        }
    }
}
