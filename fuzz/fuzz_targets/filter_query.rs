//! The `filterQuery` parser: any text either parses or is a `FilterError`, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = modelcat_index::filter::parse(text);
    }
});
