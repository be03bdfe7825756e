use super::*;

fn resources() -> Vec<Resource> {
    vec![
        Resource { name: "config.json".to_owned(), digest: "e3".repeat(32) },
        Resource { name: "weights.bin".to_owned(), digest: "23".repeat(32) },
    ]
}

fn trusted(pem: &str) -> Vec<TrustedKey> {
    vec![TrustedKey::from_pem("release", pem).unwrap()]
}

#[test]
fn a_signed_bundle_verifies_and_covers_its_files_and_the_whole_model() {
    let (key, pem) = generate_key();
    let bundle = parse(&sign(&key, &resources())).unwrap();
    let Outcome::Verified(verified) = verify(&bundle, &trusted(&pem)) else { panic!("verifies") };
    assert_eq!(verified.key_id, "release");
    assert!(verified.covers(&"23".repeat(32)) && verified.covers(&"E3".repeat(32)));
    assert!(verified.covers(&verified.subject_digest.clone()));
    assert!(!verified.covers(&"00".repeat(32)));
}

#[test]
fn tampering_and_strangers_fail_with_a_reason() {
    let (key, pem) = generate_key();
    let (_, stranger) = generate_key();
    let signed = sign(&key, &resources());
    let failed = |bundle: &[u8], keys: &[TrustedKey]| match verify(&parse(bundle).unwrap(), keys) {
        Outcome::Failed { reason } => reason,
        Outcome::Verified(_) => panic!("verified"),
    };
    assert!(failed(&signed, &trusted(&stranger)).contains("any trusted key"));
    assert!(failed(&signed, &[]).contains("no trusted keys"));
    // One changed byte of the signed statement.
    let mut json: serde_json::Value = serde_json::from_slice(&signed).unwrap();
    let payload = STANDARD.decode(json["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
    let tampered = String::from_utf8(payload).unwrap().replacen("weights.bin", "weights.bim", 1);
    json["dsseEnvelope"]["payload"] = STANDARD.encode(tampered).into();
    assert!(failed(&serde_json::to_vec(&json).unwrap(), &trusted(&pem)).contains("any trusted key"));
    // A well-signed statement with a resource that has no sha256 digest.
    let mut forged = resources();
    forged[0].digest = "zz".repeat(32);
    assert!(failed(&sign(&key, &forged), &trusted(&pem)).contains("sha256 digest"));
}

#[test]
fn what_is_not_a_bundle_or_a_p256_key_is_refused() {
    assert!(parse(b"{}").is_err());
    assert!(parse(b"not json").is_err());
    let empty = br#"{"dsseEnvelope": {"payload": "e30=", "payloadType": "x", "signatures": []}}"#;
    assert!(parse(empty).unwrap_err().to_string().contains("no signature"));
    assert!(TrustedKey::from_pem("k", "hello").is_err());
    let ed25519 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
    assert!(TrustedKey::from_pem("k", ed25519).unwrap_err().contains("P-256"));
}
