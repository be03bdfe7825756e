//! The API token format: `mct_` + 32 random base62 characters + a 6-character base62 CRC32 of them.
//!
//! The prefix and checksum let secret scanners (and modelcat itself, before any database lookup) tell a
//! real modelcat token from a typo or from another service's token. Only the SHA-256 of a token is ever
//! stored; the plaintext is shown once, when it is created.

/// Every modelcat API token starts with this.
pub const PREFIX: &str = "mct_";

const RANDOM_CHARS: usize = 32;
const CHECKSUM_CHARS: usize = 6;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A token's plaintext. Its `Debug` hides the secret, so it cannot end up in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(String);

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Plaintext({}…)", self.display_prefix())
    }
}

/// Why a string is not a modelcat token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a modelcat token (they start with {PREFIX})")]
    Foreign,
    #[error("malformed modelcat token (wrong length, characters or checksum)")]
    Malformed,
}

impl Plaintext {
    /// A new random token.
    pub fn generate() -> Plaintext {
        let mut random = [0u8; RANDOM_CHARS];
        getrandom::fill(&mut random).expect("the operating system's random source works");
        // 256 is 4 × 62 + 8: rejecting bytes ≥ 248 keeps the characters uniform; refill the rejected ones.
        let mut body = String::with_capacity(RANDOM_CHARS);
        let mut index = 0;
        while body.len() < RANDOM_CHARS {
            if index == random.len() {
                getrandom::fill(&mut random).expect("the operating system's random source works");
                index = 0;
            }
            let byte = random[index];
            index += 1;
            if byte < 248 {
                body.push(ALPHABET[usize::from(byte % 62)] as char);
            }
        }
        let checksum = checksum(&body);
        Plaintext(format!("{PREFIX}{body}{checksum}"))
    }

    /// Checks the prefix, length, alphabet and checksum of `text`.
    pub fn parse(text: &str) -> Result<Plaintext, FormatError> {
        let rest = text.strip_prefix(PREFIX).ok_or(FormatError::Foreign)?;
        let well_formed = rest.len() == RANDOM_CHARS + CHECKSUM_CHARS
            && rest.bytes().all(|byte| byte.is_ascii_alphanumeric())
            && checksum(&rest[..RANDOM_CHARS]) == rest[RANDOM_CHARS..];
        if well_formed { Ok(Plaintext(text.to_owned())) } else { Err(FormatError::Malformed) }
    }

    /// The secret itself: only for showing once to whoever created it, or sending as a credential.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored and looked up: the hex SHA-256 of the token.
    pub fn digest(&self) -> String {
        crate::hex::sha256(self.0.as_bytes())
    }

    /// The first characters, enough to tell tokens apart in a list and not enough to use one.
    pub fn display_prefix(&self) -> &str {
        &self.0[..PREFIX.len() + 4]
    }
}

fn checksum(body: &str) -> String {
    let mut value = crc32fast::hash(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_CHARS];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out.to_vec()).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let first = Plaintext::generate();
        let second = Plaintext::generate();
        assert_ne!(first, second);
        assert_eq!(first.expose().len(), PREFIX.len() + RANDOM_CHARS + CHECKSUM_CHARS);
        assert_eq!(Plaintext::parse(first.expose()), Ok(first.clone()));
        assert_eq!(first.digest().len(), 64);
        assert!(!format!("{first:?}").contains(&first.expose()[8..]), "Debug hides the secret");
    }

    #[test]
    fn typos_and_foreign_tokens_are_told_apart() {
        let token = Plaintext::generate();
        let text = token.expose();
        let mut typo = text.to_owned().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        assert_eq!(Plaintext::parse(std::str::from_utf8(&typo).expect("ascii")), Err(FormatError::Malformed));
        assert_eq!(Plaintext::parse(&text[..text.len() - 1]), Err(FormatError::Malformed));
        assert_eq!(Plaintext::parse("hf_abcdef"), Err(FormatError::Foreign));
        assert_eq!(Plaintext::parse("mct_ü"), Err(FormatError::Malformed));
    }
}
