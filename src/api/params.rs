//! The query string of a request, decoded once: repeated keys are kept, and a NUL byte anywhere is a 400.
//! Each API family adds its own typed accessors.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::api::error::ApiError;

/// The decoded query string of a request.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or_default();
        let pairs: Vec<(String, String)> = form_pairs(raw);
        if pairs.iter().any(|(key, value)| key.contains('\0') || value.contains('\0')) {
            return Err(ApiError::bad_request("invalid request: NUL byte in query parameters"));
        }
        Ok(Params(pairs))
    }
}

/// Splits and decodes a query string (or form body) into its pairs, in order, repeated keys kept.
pub fn form_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// Decodes `+` and `%XX` escapes (invalid escapes are kept as written).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        decoded.push(byte);
                        index += 3;
                        continue;
                    }
                    None => decoded.push(b'%'),
                }
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

impl Params {
    /// Returns the first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str())
    }

    /// Returns a non-empty value of `key` checked against `^[\x20-\x7E]+$`.
    pub fn text(&self, key: &str) -> Result<Option<&str>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(value) if value.bytes().all(|byte| (0x20..=0x7e).contains(&byte)) => Ok(Some(value)),
            Some(_) => Err(ApiError::bad_request(format!("invalid {key}: only printable ASCII is allowed"))),
        }
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Returns every value of `key` as given (commas are part of a value).
    pub fn every(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(name, _)| name == key).map(|(_, value)| value.as_str()).collect()
    }

    /// Returns every value of `key`, splitting comma-separated ones (`a=x&a=y,z` is `x, y, z`).
    pub fn all(&self, key: &str) -> Vec<&str> {
        let values = self.0.iter().filter(|(name, _)| name == key);
        values.flat_map(|(_, value)| value.split(',')).map(str::trim).filter(|value| !value.is_empty()).collect()
    }

    /// `sortOrder`: `ASC` (the default) or `DESC`, in any case.
    pub fn descending(&self) -> Result<bool, ApiError> {
        match self.get("sortOrder").unwrap_or_default() {
            "" => Ok(false),
            order if order.eq_ignore_ascii_case("ASC") => Ok(false),
            order if order.eq_ignore_ascii_case("DESC") => Ok(true),
            other => Err(ApiError::bad_request(format!("invalid sortOrder \"{other}\": expected ASC or DESC"))),
        }
    }

    /// `pageSize`: a positive integer, served as at most `max`; `default` when absent or empty.
    pub fn page_size(&self, default: u32, max: u32) -> Result<u32, ApiError> {
        match self.get("pageSize").unwrap_or_default() {
            "" => Ok(default),
            value => match value.parse::<u32>() {
                Ok(size) if size >= 1 => Ok(size.min(max)),
                _ => Err(ApiError::bad_request(format!("invalid pageSize \"{value}\": expected a positive integer"))),
            },
        }
    }

    /// Every parameter but the page position and size, as sorted `key=value` texts: what a page token is
    /// bound to, so it only continues the query that produced it.
    pub fn list_parameters(&self) -> Vec<String> {
        let mut parameters: Vec<String> = self
            .0
            .iter()
            .filter(|(key, _)| key != "nextPageToken" && key != "pageSize")
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        parameters.sort_unstable();
        parameters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_repeated_and_comma_separated_values() {
        let params = Params(form_pairs("source=a&source=b,c&source="));
        assert_eq!(params.all("source"), vec!["a", "b", "c"]);
    }

    #[test]
    fn decodes_query_strings() {
        let pairs = form_pairs("filterQuery=name%20%3D%20%27a%27&pageSize=5&x&nextPageToken=&q=a+b&bad=%zz");
        assert_eq!(pairs[0], ("filterQuery".into(), "name = 'a'".into()));
        assert_eq!(pairs[2], ("x".into(), "".into()));
        assert_eq!(pairs[4], ("q".into(), "a b".into()));
        assert_eq!(pairs[5], ("bad".into(), "%zz".into()));
    }
}
