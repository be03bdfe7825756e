//! Verification of OpenSSF model-signing bundles (OMS v1.0, the key-based method): a Sigstore bundle
//! whose DSSE envelope wraps an in-toto statement listing the digest of every file of the model.
//!
//! Contract:
//! - [`parse`] accepts only the shape of a bundle (JSON with a DSSE envelope: a base64 payload, its type
//!   and base64 signatures); anything else is [`BundleError`], a bad request that records nothing.
//! - [`verify`] checks the rest and always answers, verified or failed with the reason: an ECDSA P-256
//!   (SHA-256) signature over the DSSE pre-authentication encoding by one of the trusted keys; the
//!   statement type and predicate type; each resource a SHA-256 digest; and the subject's digest equal to
//!   the SHA-256 of the resources' digests in order, as model-signing computes it. modelcat holds digests,
//!   not the files, so "rehashing" compares digests: [`Verified::covers`] tells whether the signed digests
//!   include an artifact's `sha256` (a file's digest, or the whole model's).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex::is_sha256;

/// The in-toto statement type and the OMS predicate type a bundle must carry.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The DER prefix of a P-256 public key's SubjectPublicKeyInfo, before its 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A public key signatures are verified against.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub id: String,
    /// The uncompressed SEC1 point.
    point: Vec<u8>,
}

impl TrustedKey {
    /// Reads a PEM `PUBLIC KEY` (an ECDSA P-256 SubjectPublicKeyInfo, as `openssl ec -pubout` writes).
    pub fn from_pem(id: &str, pem: &str) -> Result<TrustedKey, String> {
        let body: String = pem
            .lines()
            .skip_while(|line| line.trim() != "-----BEGIN PUBLIC KEY-----")
            .skip(1)
            .take_while(|line| line.trim() != "-----END PUBLIC KEY-----")
            .collect();
        let der = STANDARD.decode(body.trim()).map_err(|_| "not a PEM public key".to_owned())?;
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 4 => {
                Ok(TrustedKey { id: id.to_owned(), point: point.to_vec() })
            }
            _ => Err("not an ECDSA P-256 public key (model-signing's key method signs with P-256)".to_owned()),
        }
    }
}

/// Why a body is not a signature bundle at all.
#[derive(Debug, thiserror::Error)]
#[error("not a model-signing bundle: {0}")]
pub struct BundleError(String);

/// A bundle's DSSE envelope, decoded.
#[derive(Debug, Clone)]
pub struct Bundle {
    payload_type: String,
    payload: Vec<u8>,
    signatures: Vec<Vec<u8>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleShape {
    dsse_envelope: Envelope,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

/// Reads the bundle's envelope.
pub fn parse(bundle: &[u8]) -> Result<Bundle, BundleError> {
    let shape: BundleShape = serde_json::from_slice(bundle)
        .map_err(|error| BundleError(format!("{error} (a Sigstore bundle with a dsseEnvelope is expected)")))?;
    let envelope = shape.dsse_envelope;
    let payload = STANDARD.decode(&envelope.payload).map_err(|_| BundleError("the payload is not base64".into()))?;
    let signatures = envelope
        .signatures
        .iter()
        .map(|signature| STANDARD.decode(&signature.sig))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| BundleError("a signature is not base64".into()))?;
    if signatures.is_empty() {
        return Err(BundleError("the envelope has no signature".into()));
    }
    Ok(Bundle { payload_type: envelope.payload_type, payload, signatures })
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Verified(Verified),
    Failed { reason: String },
}

/// A verified statement: who signed it and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    pub key_id: String,
    /// The model's digest (the statement's subject).
    pub subject_digest: String,
    pub resources: Vec<Resource>,
}

/// One signed file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    pub digest: String,
}

impl Verified {
    /// Whether the signed digests include `sha256` (a file's, or the whole model's).
    pub fn covers(&self, sha256: &str) -> bool {
        self.subject_digest.eq_ignore_ascii_case(sha256)
            || self.resources.iter().any(|resource| resource.digest.eq_ignore_ascii_case(sha256))
    }
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Predicate,
}

#[derive(Deserialize)]
struct Subject {
    digest: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Predicate {
    resources: Vec<SignedResource>,
}

#[derive(Deserialize)]
struct SignedResource {
    name: String,
    algorithm: String,
    digest: String,
}

/// Verifies a bundle against the trusted keys.
pub fn verify(bundle: &Bundle, keys: &[TrustedKey]) -> Outcome {
    match check(bundle, keys) {
        Ok(verified) => Outcome::Verified(verified),
        Err(reason) => Outcome::Failed { reason },
    }
}

fn check(bundle: &Bundle, keys: &[TrustedKey]) -> Result<Verified, String> {
    if bundle.payload_type != PAYLOAD_TYPE {
        return Err(format!("the payload type is {:?}, not {PAYLOAD_TYPE:?}", bundle.payload_type));
    }
    if keys.is_empty() {
        return Err("no trusted keys are configured (governance.trusted_keys)".to_owned());
    }
    let message = pre_authentication_encoding(&bundle.payload_type, &bundle.payload);
    let signer = keys.iter().find(|key| {
        let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key.point);
        bundle.signatures.iter().any(|signature| key.verify(&message, signature).is_ok())
    });
    let Some(signer) = signer else {
        return Err("the signature does not verify against any trusted key".to_owned());
    };
    let statement: Statement = serde_json::from_slice(&bundle.payload)
        .map_err(|error| format!("the signed payload is not an in-toto statement: {error}"))?;
    if statement.kind != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
        return Err(format!(
            "the statement is {:?} with predicate {:?}, not an OMS v1.0 model signature",
            statement.kind, statement.predicate_type
        ));
    }
    let mut whole = Sha256::new();
    let mut resources = Vec::new();
    for resource in statement.predicate.resources {
        if resource.algorithm != "sha256" || !is_sha256(&resource.digest) {
            return Err(format!("resource {:?} is not signed with a sha256 digest", resource.name));
        }
        whole.update(crate::hex::decode(&resource.digest).unwrap_or_default());
        resources.push(Resource { name: resource.name, digest: resource.digest.to_ascii_lowercase() });
    }
    let [subject] = &statement.subject[..] else {
        return Err("the statement must have exactly one subject".to_owned());
    };
    let subject_digest = subject.digest.get("sha256").map(|digest| digest.to_ascii_lowercase()).unwrap_or_default();
    if subject_digest != crate::hex::encode(&whole.finalize()) {
        return Err("the subject's digest is not the digest of the signed resources".to_owned());
    }
    Ok(Verified { key_id: signer.id.clone(), subject_digest, resources })
}

/// Signs `resources` the way model-signing's key method does (used by the benchmark and the tests, which
/// cannot run model-signing itself): an OMS v1.0 statement in a DSSE envelope in a Sigstore bundle.
pub fn sign(key: &ring::signature::EcdsaKeyPair, resources: &[Resource]) -> Vec<u8> {
    let mut whole = Sha256::new();
    for resource in resources {
        whole.update(crate::hex::decode(&resource.digest).unwrap_or_default());
    }
    let statement = serde_json::json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "model", "digest": {"sha256": crate::hex::encode(&whole.finalize())}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "resources": resources.iter().map(|resource| serde_json::json!({
                "algorithm": "sha256", "name": resource.name, "digest": resource.digest,
            })).collect::<Vec<_>>(),
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": []},
        },
    });
    let payload = serde_json::to_vec(&statement).unwrap_or_default();
    let message = pre_authentication_encoding(PAYLOAD_TYPE, &payload);
    let signature = key.sign(&ring::rand::SystemRandom::new(), &message).expect("ECDSA signing works");
    let bundle = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": STANDARD.encode(&payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": STANDARD.encode(signature.as_ref()), "keyid": ""}],
        },
    });
    serde_json::to_vec(&bundle).unwrap_or_default()
}

/// A new P-256 key pair for [`sign`], and its public key as PEM.
pub fn generate_key() -> (ring::signature::EcdsaKeyPair, String) {
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    let random = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &random).expect("key generation");
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &random).expect("own key");
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(key.public_key().as_ref());
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der));
    (key, pem)
}

/// DSSE's PAE: `DSSEv1 SP len(type) SP type SP len(body) SP body`.
fn pre_authentication_encoding(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut message = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    message.extend_from_slice(payload);
    message
}

#[cfg(test)]
mod tests;
