//! Opaque page tokens for keyset pagination.
//!
//! A token is base64url (no padding) of a small JSON object: the sort value and id of the last row served
//! and a hash of the query that produced it. Reusing a token with another filter, order or parent is
//! rejected rather than silently skipping rows. An empty token means the first page (the Python client's
//! pager sends `nextPageToken=`); tokens longer than [`MAX_TOKEN_LEN`] are rejected unread.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::registry::{Cursor, CursorValue};

/// The longest token accepted.
pub const MAX_TOKEN_LEN: usize = 1024;

#[derive(Serialize, Deserialize)]
struct TokenBody {
    #[serde(rename = "v")]
    sort_value: CursorValue,
    #[serde(rename = "i")]
    id: i64,
    #[serde(rename = "h")]
    query_hash: String,
}

/// A token that cannot be used for this request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("invalid nextPageToken")]
    Malformed,
    #[error("nextPageToken belongs to a different query (filter, order or parent changed)")]
    OtherQuery,
}

/// Hashes the parts of a query a token is bound to (FNV-1a, stable across builds and restarts).
pub fn query_hash(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Encodes the cursor of the next page.
pub fn encode(cursor: &Cursor, query_hash: &str) -> String {
    let body = TokenBody { sort_value: cursor.sort_value.clone(), id: cursor.id, query_hash: query_hash.to_owned() };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default())
}

/// Decodes a token; `Ok(None)` for an empty token.
pub fn decode(token: &str, query_hash: &str) -> Result<Option<Cursor>, TokenError> {
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| TokenError::Malformed)?;
    let body: TokenBody = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    if body.query_hash != query_hash {
        return Err(TokenError::OtherQuery);
    }
    Ok(Some(Cursor { sort_value: body.sort_value, id: body.id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let hash = query_hash(&["registered_model", "NAME", "ASC", "state = 'LIVE'"]);
        let cursor = Cursor { sort_value: CursorValue::Text("model-7".into()), id: 7 };
        let token = encode(&cursor, &hash);
        assert_eq!(decode(&token, &hash), Ok(Some(cursor)));
        assert_eq!(decode(&token, &query_hash(&["registered_model", "ID"])), Err(TokenError::OtherQuery));
        assert_eq!(decode("", &hash), Ok(None));
        assert_eq!(decode("not-a-token!", &hash), Err(TokenError::Malformed));
        assert_eq!(decode(&"a".repeat(MAX_TOKEN_LEN + 1), &hash), Err(TokenError::Malformed));
    }
}
