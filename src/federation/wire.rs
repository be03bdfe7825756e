//! The change feed's wire format (`/api/modelcat/v1/changes` and `/snapshot`), shared by the server and
//! the `modelcat` peer protocol.
//!
//! A change is an upsert (the normalized record with its artifacts, and the origin chain beside it), a
//! tombstone, or a reset (the source's records are replaced: forget them; its current records follow in
//! the same page). A cursor is opaque to consumers: the log epoch and a position, so a cursor from a
//! replaced database is told apart from one that is merely old.

use modelcat_sources::ModelRecord;
use modelcat_sources::peer::Hop;

/// One change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Event {
    /// A record as it is now; `origin` lists every registry it passed through, its origin first and the
    /// serving instance last.
    Upsert { source: String, name: String, record: Box<ModelRecord>, origin: Vec<Hop> },
    /// The record is gone (or no longer offered to this consumer).
    Delete { source: String, name: String },
    /// Every record of `source` was replaced: drop what you hold of it; its records follow.
    Reset { source: String },
}

impl Event {
    pub fn source(&self) -> &str {
        match self {
            Event::Upsert { source, .. } | Event::Delete { source, .. } | Event::Reset { source } => source,
        }
    }
}

/// A page of the feed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub changes: Vec<Event>,
    /// Where the next request continues (the current head when nothing was new).
    pub cursor: String,
    /// The serving instance.
    pub instance: String,
}

/// The last line of a snapshot: without it, the snapshot was cut short.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotEnd {
    pub cursor: String,
    pub count: u64,
    pub instance: String,
}

/// One line of a snapshot (NDJSON): records, then the end.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum SnapshotLine {
    Record(Event),
    End { end: SnapshotEnd },
}

/// A position in one log epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: String,
    pub position: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.epoch, self.position)
    }

    /// `None` when the text is not a cursor this feed hands out.
    pub fn decode(text: &str) -> Option<Cursor> {
        let (epoch, position) = text.rsplit_once('.')?;
        let position: i64 = position.parse().ok().filter(|position| *position >= 0)?;
        let valid = !epoch.is_empty() && epoch.chars().all(|c| c.is_ascii_alphanumeric());
        valid.then(|| Cursor { epoch: epoch.to_owned(), position })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor { epoch: "0a1b".into(), position: 42 };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        for bad in ["", "42", ".42", "ab.-1", "ab.x", "a-b.1"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn snapshot_lines_tell_records_from_the_end() {
        let end = SnapshotLine::End { end: SnapshotEnd { cursor: "e.1".into(), count: 0, instance: "a".into() } };
        let text = serde_json::to_string(&end).unwrap();
        assert_eq!(serde_json::from_str::<SnapshotLine>(&text).unwrap(), end);
        let delete = SnapshotLine::Record(Event::Delete { source: "s".into(), name: "n".into() });
        let text = serde_json::to_string(&delete).unwrap();
        assert_eq!(serde_json::from_str::<SnapshotLine>(&text).unwrap(), delete);
    }
}
