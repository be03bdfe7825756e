//! A Hub model document (JSON from the Hub or a peer) and its README: mapped to a record or skipped.
//! Also the Hub's time and Go duration formats, which come from the same documents and configs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|byte| *byte == 0).unwrap_or(data.len());
    let (json, readme) = data.split_at(split);
    if let Ok(info) = serde_json::from_slice::<serde_json::Value>(json) {
        let readme = std::str::from_utf8(readme.get(1..).unwrap_or_default()).ok();
        let _ = modelcat_sources::hf::model_record(&info, readme, 0);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = modelcat_sources::hf::parse_hub_time(text);
        let _ = modelcat_sources::hf::parse_go_duration(text);
        if let Some(millis) = modelcat_sources::hf::parse_hub_time(text) {
            let _ = modelcat_sources::hf::format_hub_time(millis);
        }
        let _ = modelcat_sources::hf::strip_front_matter(text);
    }
});
