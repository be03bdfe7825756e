//! A JSON field that tells `null` from absent: `#[serde(default, deserialize_with =
//! "crate::nullable::deserialize")]` on an `Option<Option<T>>` gives `None` when the field is left out,
//! `Some(None)` when it is `null` (clear it) and `Some(Some(value))` otherwise.

use serde::{Deserialize, Deserializer};

pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}
