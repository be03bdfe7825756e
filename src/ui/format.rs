//! Small formatting helpers shared by the pages.

use modelcat_sources::MetadataValue;

/// A time in milliseconds since the epoch as a UTC date, `2026-12-07`.
pub fn date(millis: i64) -> String {
    time(millis)[..10].to_owned()
}

/// A time in milliseconds since the epoch as UTC date and time, `2026-12-07 10:22:03 UTC`.
pub fn time(millis: i64) -> String {
    // The Hub's format, `2026-12-07T10:22:03.000Z`, has both.
    let iso = modelcat_sources::hf::format_hub_time(millis);
    format!("{} {} UTC", &iso[..10], &iso[11..19])
}

/// A number without a needless fraction (`12`, `0.61`, `48.5`).
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A property value as text.
pub fn value(value: &MetadataValue) -> String {
    match value {
        MetadataValue::String(text) => text.clone(),
        MetadataValue::Int(number) => number.to_string(),
        MetadataValue::Double(number) => self::number(*number),
        MetadataValue::Bool(flag) => flag.to_string(),
    }
}

/// A property value as a number, when it is one.
pub fn as_number(value: &MetadataValue) -> Option<f64> {
    match value {
        MetadataValue::Int(number) => Some(*number as f64),
        MetadataValue::Double(number) => Some(*number),
        MetadataValue::String(text) => text.trim().parse().ok(),
        MetadataValue::Bool(_) => None,
    }
}

/// A query string from pairs, percent-encoded.
pub fn query(pairs: &[(String, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key, value);
    }
    serializer.finish()
}

/// What a path segment keeps unencoded: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A path segment list (`org/model`) with each segment percent-encoded.
pub fn path(name: &str) -> String {
    name.split('/')
        .map(|part| percent_encoding::utf8_percent_encode(part, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_765_065_600_000), "2025-12-07");
        assert_eq!(date(951_782_400_000), "2000-02-29");
        assert_eq!(time(1_765_103_323_000), "2025-12-07 10:28:43 UTC");
    }

    #[test]
    fn numbers_drop_needless_fractions() {
        assert_eq!(number(12.0), "12");
        assert_eq!(number(0.61), "0.61");
        assert_eq!(number(48.5), "48.5");
        assert_eq!(number(1.0 / 3.0), "0.333");
    }

    #[test]
    fn paths_keep_slashes_and_encode_the_rest() {
        assert_eq!(path("org/a b?"), "org/a%20b%3F");
        assert_eq!(path("ibm/granite-3.1_x~y"), "ibm/granite-3.1_x~y");
    }
}
