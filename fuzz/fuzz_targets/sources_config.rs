//! A sources file (Kubeflow's sources.yaml, layered): any text is a config or a `ConfigError`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let files = [(std::path::PathBuf::from("/etc/modelcat/sources.yaml"), text.to_owned())];
        let _ = modelcat_sources::config::parse(&files);
    }
});
