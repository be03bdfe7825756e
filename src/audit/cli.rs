//! `modelcat audit verify`: checks the audit log of the store the server uses and exits non-zero naming
//! the first bad entry.

use std::path::PathBuf;

use super::checkpoint;
use super::verify;
use crate::config::StoreArgs;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Verifies the hash chain and the signed checkpoints.
    Verify {
        /// A public key (hex, as in a server's `<data_dir>/audit-key.pub`) whose checkpoints to trust;
        /// repeat for several replicas [default: this data directory's].
        #[arg(long = "trusted-key")]
        trusted_keys: Vec<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify { mut trusted_keys, store } = command;
    let settings = store.settings()?;
    if trusted_keys.is_empty() {
        let local = settings.data_dir.join(checkpoint::PUBLIC_KEY_FILE);
        if local.exists() {
            trusted_keys.push(local);
        }
    }
    let mut keys = Vec::new();
    for path in &trusted_keys {
        let text = std::fs::read_to_string(path).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        keys.push(
            crate::hex::decode(&text).ok_or_else(|| anyhow::anyhow!("{} is not a hex public key", path.display()))?,
        );
    }
    let backend = store.connect().await?;
    let report = verify::verify(&*backend, &keys).await?;
    if let Some(problem) = report.problem {
        anyhow::bail!("audit log is NOT intact: {problem}");
    }
    println!(
        "audit log intact: {} entries chained, {} signed checkpoints verified{}{}",
        report.entries,
        report.checkpoints_verified,
        if report.checkpoints_unknown > 0 {
            format!(", {} signed by keys not given (unchecked)", report.checkpoints_unknown)
        } else {
            String::new()
        },
        if report.unsealed > 0 { format!(", {} not chained yet", report.unsealed) } else { String::new() },
    );
    if report.pruned_through > 0 {
        println!("entries through {} were removed by retention (recorded and signed)", report.pruned_through);
    }
    if report.checkpoints_verified == 0 {
        eprintln!("warning: no checkpoint was verified; a truncated or re-chained log would go unnoticed");
    }
    Ok(())
}
