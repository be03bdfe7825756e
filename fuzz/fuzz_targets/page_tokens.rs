//! Page tokens and cursors clients send back: the registry's and catalog's `nextPageToken`, the Hub
//! listing's `cursor` and the change feed's `since`. Any text either decodes or is refused, never a
//! panic; a decoded registry token re-encodes to one that decodes to the same cursor.
#![no_main]

use modelcat::pagination;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let hash = pagination::query_hash(&["registered_model", "NAME"]);
    if let Ok(Some(cursor)) = pagination::decode(text, &hash) {
        let again = pagination::encode(&cursor, &hash);
        assert_eq!(pagination::decode(&again, &hash), Ok(Some(cursor)));
    }
    let _ = modelcat::api::hf::decode_cursor(text, 7);
    if let Some(cursor) = modelcat::federation::wire::Cursor::decode(text) {
        assert_eq!(modelcat::federation::wire::Cursor::decode(&cursor.encode()), Some(cursor));
    }
});
