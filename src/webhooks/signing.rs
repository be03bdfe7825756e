//! Standard Webhooks signatures: a secret is `whsec_` and the base64 of its key bytes; a delivery's
//! signature is `v1,` and the base64 of HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`.
//! During a secret rotation the header carries one signature per secret, separated by spaces.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

/// The prefix of a webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the operating system provides random bytes");
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The key bytes of a secret, or `None` if it is not one.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok().filter(|key| !key.is_empty())
}

/// The `webhook-signature` value for `body` sent as `id` at `timestamp` (seconds), signed with each of
/// `keys`.
pub fn signature(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    let signed: Vec<String> = keys
        .iter()
        .map(|key| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, key);
            let mut context = hmac::Context::with_key(&key);
            context.update(id.as_bytes());
            context.update(b".");
            context.update(timestamp.to_string().as_bytes());
            context.update(b".");
            context.update(body);
            format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
        })
        .collect();
    signed.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specification_example() {
        // The example of the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signed = signature(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_round_trip_and_rotation_signs_twice() {
        let secret = generate_secret();
        assert!(secret.starts_with("whsec_"));
        let key = secret_key(&secret).unwrap();
        assert_eq!(key.len(), 32);
        let both = signature(&[key.clone(), vec![1, 2, 3]], "msg", 1, b"{}");
        assert_eq!(both.split(' ').count(), 2);
        assert!(both.starts_with(&signature(&[key], "msg", 1, b"{}")));
        assert_eq!(secret_key("nope"), None);
        assert_eq!(secret_key("whsec_"), None);
    }
}
