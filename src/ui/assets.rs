//! The UI's static files, compiled into the binary and served at content-addressed URLs.
//!
//! Contract:
//! - Each file is served at `/ui/assets/{name}?v={hash}`, where the hash is a prefix of its SHA-256: the
//!   URL changes whenever the bytes do, so answers are cached for a year as `immutable`.
//! - Third-party files are pinned: their SHA-256 is recorded in `assets/SHA256SUMS` (as their
//!   publisher's package holds them), and a test fails when a committed file drifts from it.
//! - No build step: what is committed is what is served.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::UiError;

/// One static file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

/// Every file the UI serves.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "htmx-2.0.11.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/htmx-2.0.11.min.js"),
    },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("assets/app.js") },
    Asset { name: "style.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("assets/style.css") },
];

/// The recorded SHA-256 of the pinned third-party files (`sum  name` lines).
pub const PINNED_SUMS: &str = include_str!("assets/SHA256SUMS");

/// Each asset's URL, with its content hash.
static URLS: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| (asset.name, format!("/ui/assets/{}?v={}", asset.name, &crate::hex::sha256(asset.bytes)[..16])))
        .collect()
});

/// The URL of the asset `name` (templates call it).
pub fn url(name: &str) -> &'static str {
    URLS.iter().find(|(known, _)| *known == name).map_or("", |(_, url)| url.as_str())
}

/// `GET /ui/assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Result<Response, UiError> {
    let asset = ASSETS
        .iter()
        .find(|asset| asset.name == file)
        .ok_or_else(|| UiError::not_found(format!("no asset named {file}")))?;
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn pinned_files_match_their_recorded_sums() {
        let mut pinned = 0;
        for line in PINNED_SUMS.lines().filter(|line| !line.trim().is_empty() && !line.starts_with('#')) {
            let (sum, name) = line.split_once("  ").expect("`sum  name` lines");
            let asset = ASSETS.iter().find(|asset| asset.name == name).unwrap_or_else(|| panic!("{name} is served"));
            assert_eq!(crate::hex::sha256(asset.bytes), sum, "{name} drifted from its recorded sum");
            pinned += 1;
        }
        assert!(pinned >= 1, "htmx is pinned");
    }

    #[test]
    fn javascript_stays_under_30_kb_gzipped() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for asset in ASSETS.iter().filter(|asset| asset.name.ends_with(".js")) {
            encoder.write_all(asset.bytes).unwrap();
        }
        let size = encoder.finish().unwrap().len();
        assert!(size < 30 * 1024, "{size} bytes of gzipped JavaScript");
    }

    #[test]
    fn urls_carry_the_content_hash() {
        let url = url("style.css");
        assert!(url.starts_with("/ui/assets/style.css?v=") && url.len() == "/ui/assets/style.css?v=".len() + 16);
        assert_eq!(super::url("missing.js"), "");
    }
}
