//! modelcat-index: the catalog's full-text and faceted search index.
//!
//! The contract this crate will keep (the tantivy implementation arrives with the catalog issue; until
//! then the crate holds only the document key every caller shares):
//!
//! - One writer task owns the index writer; callers send replace-source, upsert and delete operations and
//!   may await an acknowledgement that means "visible to the next search" (commit, then reader reload).
//! - A source's records are replaced in one commit, so readers see the whole old or the whole new source.
//! - Documents are keyed by [`DocKey`] (`"{source_id}:{name}"`); the index knows no sources, no HTTP and
//!   no SQL: callers map their records to its document type.
//! - The index lives under the data directory and is rebuilt from the sources and the store when it is
//!   missing, corrupt or of an older schema version.

use std::fmt;

/// The key of one catalog document: a source id and a model name, which may itself contain `:` or `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocKey {
    pub source_id: String,
    pub name: String,
}

impl DocKey {
    /// Parses `source:name`, splitting at the first `:` (source ids never contain one).
    pub fn parse(text: &str) -> Option<DocKey> {
        let (source_id, name) = text.split_once(':')?;
        (!source_id.is_empty() && !name.is_empty())
            .then(|| DocKey { source_id: source_id.to_owned(), name: name.to_owned() })
    }
}

impl fmt::Display for DocKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.source_id, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_with_colons_and_slashes_in_names() {
        let key = DocKey { source_id: "hf".into(), name: "org/model:v2".into() };
        assert_eq!(DocKey::parse(&key.to_string()), Some(key));
        assert_eq!(DocKey::parse("no-separator"), None);
        assert_eq!(DocKey::parse(":name"), None);
    }
}
