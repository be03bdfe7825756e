//! Evidence bundles: one model version's record, as a deterministic tar archive signed by the server.
//!
//! Contract:
//! - [`pack`] writes the files in name order with fixed metadata (mode 0644, owner 0, time 0), then
//!   `manifest.json` (every file's name, size and SHA-256) and `signature.json` (an Ed25519 signature
//!   of the manifest's bytes by the server's key, with the key's id). The same record packs to the same
//!   bytes.
//! - [`verify`] checks a bundle offline against trusted public keys: the signature over the manifest,
//!   then every file against the manifest. A changed byte, a wrong key, a missing file and an extra or
//!   repeated file each fail, with the reason.

use std::collections::BTreeMap;
use std::io::Read as _;

use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::audit::checkpoint::{Signer, key_id};

/// The format named in every manifest.
pub const FORMAT: &str = "modelcat-evidence/1";
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "signature.json";

/// The manifest: what the bundle is of, and every other file's digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub registered_model_id: String,
    pub model_version_id: String,
    pub files: Vec<FileDigest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// The server's signature of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestSignature {
    pub algorithm: String,
    pub key_id: String,
    /// Hex of the 64-byte signature of `manifest.json`'s bytes.
    pub signature: String,
}

/// Packs `files` (name to bytes) of a version into a signed archive.
pub fn pack(model: i64, version: i64, files: &BTreeMap<String, Vec<u8>>, signer: &Signer) -> Vec<u8> {
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        registered_model_id: model.to_string(),
        model_version_id: version.to_string(),
        files: files
            .iter()
            .map(|(name, bytes)| FileDigest {
                name: name.clone(),
                size: bytes.len() as u64,
                sha256: crate::hex::sha256(bytes),
            })
            .collect(),
    };
    let manifest = pretty(&manifest);
    let signature = ManifestSignature {
        algorithm: "ed25519".to_owned(),
        key_id: signer.key_id().to_owned(),
        signature: crate::hex::encode(&signer.sign_bytes(&manifest)),
    };
    let mut archive = tar::Builder::new(Vec::new());
    let named = files.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice()));
    let signature = pretty(&signature);
    for (name, bytes) in named.chain([(MANIFEST, manifest.as_slice()), (SIGNATURE, signature.as_slice())]) {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        archive.append_data(&mut header, name, bytes).expect("writing to memory");
    }
    archive.into_inner().expect("writing to memory")
}

/// What a verified bundle is of.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub manifest: Manifest,
    pub key_id: String,
}

/// Why a bundle failed verification.
#[derive(Debug, thiserror::Error)]
#[error("the evidence bundle is NOT valid: {0}")]
pub struct Invalid(pub String);

/// Verifies a bundle against trusted Ed25519 public keys (raw bytes).
pub fn verify(bundle: &[u8], trusted: &[Vec<u8>]) -> Result<Verified, Invalid> {
    let fail = |reason: String| Err(Invalid(reason));
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut archive = tar::Archive::new(bundle);
    let entries = archive.entries().map_err(|error| Invalid(format!("not a tar archive: {error}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|error| Invalid(format!("not a tar archive: {error}")))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return fail("the archive holds something other than a regular file".to_owned());
        }
        let name = entry.path().map_err(|error| Invalid(error.to_string()))?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|error| Invalid(format!("{name}: {error}")))?;
        if files.insert(name.clone(), bytes).is_some() {
            return fail(format!("{name} appears twice"));
        }
    }
    let Some(manifest_bytes) = files.remove(MANIFEST) else { return fail(format!("{MANIFEST} is missing")) };
    let Some(signature) = files.remove(SIGNATURE) else { return fail(format!("{SIGNATURE} is missing")) };
    let signature: ManifestSignature =
        serde_json::from_slice(&signature).map_err(|error| Invalid(format!("{SIGNATURE}: {error}")))?;
    let Some(key) = trusted.iter().find(|key| key_id(key) == signature.key_id) else {
        return fail(format!("it is signed by key {}, which is not among the trusted keys", signature.key_id));
    };
    let signed = crate::hex::decode(&signature.signature).unwrap_or_default();
    if signature.algorithm != "ed25519"
        || UnparsedPublicKey::new(&ED25519, key).verify(&manifest_bytes, &signed).is_err()
    {
        return fail(format!("the signature of {MANIFEST} does not verify with key {}", signature.key_id));
    }
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|error| Invalid(format!("{MANIFEST}: {error}")))?;
    if manifest.format != FORMAT {
        return fail(format!("unknown format {:?}", manifest.format));
    }
    for listed in &manifest.files {
        let Some(bytes) = files.remove(&listed.name) else { return fail(format!("{} is missing", listed.name)) };
        if bytes.len() as u64 != listed.size || crate::hex::sha256(&bytes) != listed.sha256 {
            return fail(format!("{} does not match its digest in the manifest", listed.name));
        }
    }
    if let Some(extra) = files.keys().next() {
        return fail(format!("{extra} is not listed in the manifest (not signed)"));
    }
    Ok(Verified { manifest, key_id: signature.key_id })
}

/// JSON with two-space indentation and a final newline (readable in the archive).
pub fn pretty(value: &impl Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_signer() -> (tempfile::TempDir, Signer, Vec<u8>) {
        let directory = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(directory.path()).unwrap();
        let public = signer.public_key().to_vec();
        (directory, signer, public)
    }

    fn files() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            ("model-card.json".to_owned(), b"{\"name\": \"fraud\"}\n".to_vec()),
            ("transitions.json".to_owned(), b"[]\n".to_vec()),
        ])
    }

    /// The archive's entries, rebuilt with fixed metadata after `change` edits them.
    fn repack(bundle: &[u8], change: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> Vec<u8> {
        let mut entries: Vec<(String, Vec<u8>)> = tar::Archive::new(bundle)
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                (entry.path().unwrap().to_string_lossy().into_owned(), bytes)
            })
            .collect();
        change(&mut entries);
        let mut archive = tar::Builder::new(Vec::new());
        for (name, bytes) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            archive.append_data(&mut header, name, bytes.as_slice()).unwrap();
        }
        archive.into_inner().unwrap()
    }

    #[test]
    fn a_bundle_is_deterministic_and_verifies_with_the_servers_key() {
        let (_directory, signer, public) = fresh_signer();
        let bundle = pack(3, 7, &files(), &signer);
        assert_eq!(bundle, pack(3, 7, &files(), &signer), "the same record packs to the same bytes");
        let verified = verify(&bundle, std::slice::from_ref(&public)).unwrap();
        assert_eq!((verified.manifest.model_version_id.as_str(), verified.manifest.files.len()), ("7", 2));
    }

    #[test]
    fn a_changed_byte_a_wrong_key_or_an_extra_file_fail() {
        let (_directory, signer, public) = fresh_signer();
        let (_other, _, stranger) = fresh_signer();
        let bundle = pack(3, 7, &files(), &signer);
        let trusted = std::slice::from_ref(&public);
        let reason = |bundle: &[u8], keys: &[Vec<u8>]| verify(bundle, keys).unwrap_err().0;
        assert!(reason(&bundle, &[stranger]).contains("not among the trusted keys"));
        let flipped = repack(&bundle, |entries| entries[0].1[3] ^= 1);
        assert_eq!(reason(&flipped, trusted), "model-card.json does not match its digest in the manifest");
        let manifest = repack(&bundle, |entries| {
            let manifest = &mut entries.iter_mut().find(|(name, _)| name == MANIFEST).unwrap().1;
            let at = manifest.iter().position(|byte| *byte == b'7').unwrap();
            manifest[at] = b'8';
        });
        assert!(reason(&manifest, trusted).contains("does not verify"));
        let extra = repack(&bundle, |entries| entries.push(("notes.txt".to_owned(), b"trust me".to_vec())));
        assert_eq!(reason(&extra, trusted), "notes.txt is not listed in the manifest (not signed)");
        let missing = repack(&bundle, |entries| entries.remove(1).1.clear());
        assert_eq!(reason(&missing, trusted), "transitions.json is missing");
        let twice = repack(&bundle, |entries| entries.push(entries[0].clone()));
        assert_eq!(reason(&twice, trusted), "model-card.json appears twice");
        assert!(reason(b"not a tar", trusted).contains("missing") || reason(b"not a tar", trusted).contains("tar"));
    }
}
