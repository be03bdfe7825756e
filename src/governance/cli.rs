//! `modelcat evidence …`: export a version's evidence bundle from the store the server uses (signed with
//! this data directory's key, as the server signs it), and verify a bundle offline.

use std::path::PathBuf;

use super::evidence;
use super::store::GovernanceStore;
use crate::audit::checkpoint::{PUBLIC_KEY_FILE, Signer};
use crate::config::StoreArgs;

#[derive(Debug, clap::Subcommand)]
pub enum EvidenceCommand {
    /// Writes a model version's signed evidence bundle (a tar archive).
    Export {
        /// The model version's id.
        #[arg(long = "version")]
        model_version: i64,
        /// Where to write it [default: evidence-model-version-<id>.tar].
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Verifies a bundle offline: its signature by a trusted key, and every file against its manifest.
    Verify {
        /// The bundle.
        bundle: PathBuf,
        /// A server's public key (hex, as in `<data_dir>/audit-key.pub`, or the evidence key the API
        /// serves); repeat for several [default: this data directory's].
        #[arg(long = "trusted-key")]
        trusted_keys: Vec<PathBuf>,
        /// The data directory whose key is trusted by default [default: data].
        #[arg(long, env = "MODELCAT_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
}

pub async fn run(command: EvidenceCommand) -> anyhow::Result<()> {
    match command {
        EvidenceCommand::Export { model_version, output, store } => {
            let settings = store.settings()?;
            let signer = Signer::load_or_create(&settings.data_dir)?;
            let backend = store.connect().await?;
            let (model, files) = GovernanceStore::new(backend, Vec::new()).evidence_files(model_version).await?;
            let bundle = evidence::pack(model, model_version, &files, &signer);
            let output = output.unwrap_or_else(|| PathBuf::from(format!("evidence-model-version-{model_version}.tar")));
            std::fs::write(&output, &bundle).map_err(|error| anyhow::anyhow!("{}: {error}", output.display()))?;
            eprintln!(
                "wrote {} ({} files, {} bytes), signed by key {}",
                output.display(),
                files.len() + 2,
                bundle.len(),
                signer.key_id()
            );
        }
        EvidenceCommand::Verify { bundle, mut trusted_keys, data_dir } => {
            if trusted_keys.is_empty() {
                trusted_keys.push(data_dir.join(PUBLIC_KEY_FILE));
            }
            let mut keys = Vec::new();
            for path in &trusted_keys {
                let text =
                    std::fs::read_to_string(path).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
                let key = crate::hex::decode(&text)
                    .ok_or_else(|| anyhow::anyhow!("{} is not a hex public key", path.display()))?;
                keys.push(key);
            }
            let bytes = std::fs::read(&bundle).map_err(|error| anyhow::anyhow!("{}: {error}", bundle.display()))?;
            let verified = evidence::verify(&bytes, &keys)?;
            println!(
                "evidence bundle valid: model version {} of registered model {}, {} files, signed by key {}",
                verified.manifest.model_version_id,
                verified.manifest.registered_model_id,
                verified.manifest.files.len(),
                verified.key_id
            );
        }
    }
    Ok(())
}
