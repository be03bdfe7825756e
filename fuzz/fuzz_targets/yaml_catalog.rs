//! A YAML catalog file, as hand-edited: any bytes either parse into records or are an error.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = modelcat_sources::parse_catalog(data);
});
