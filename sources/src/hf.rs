//! The Hugging Face Hub source: its settings (Kubeflow's `type: hf` properties) and the mapping from a Hub
//! `model_info` document to a catalog [`ModelRecord`].
//!
//! Fetching lives with the mirror (it needs HTTP and the store); this module is pure.
//!
//! Settings follow Kubeflow (`kubeflow-compat.md` §3.4): `includedModels` is required and drives what is
//! listed, with three pattern kinds: an exact `org/model`, `org/*` (every model of an author) and
//! `org/prefix*` (an author's models whose name starts with `prefix`). `allowedOrganization` prefixes every
//! include and exclude pattern with `org/` (and an empty include list then means `org/*`). `*`, `*/*`,
//! `*/x`, a wildcard in the org part and an empty model part are rejected. modelcat adds `files` (which
//! small files to mirror) and `maxConcurrency` (requests in flight).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;

use crate::{ArtifactCommon, ArtifactKind, ArtifactRecord, MetadataValue, ModelRecord};

/// The Hub a source talks to when `url` is not given.
pub const DEFAULT_URL: &str = "https://huggingface.co";
/// The environment variable holding the API key when `apiKeyEnvVar` is not given.
pub const DEFAULT_API_KEY_ENV_VAR: &str = "HF_API_KEY";
/// How often a source re-syncs when `syncInterval` is not given (Kubeflow's default).
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The small files mirrored when `files` is not given; the safetensors header (or index) is always added.
pub const DEFAULT_FILES: &[&str] = &["config.json", "generation_config.json", "tokenizer_config.json"];
/// Requests in flight to one Hub when `maxConcurrency` is not given.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// A validated `hf` source.
#[derive(Debug, Clone, PartialEq)]
pub struct HfParams {
    /// The Hub's base URL, without a trailing slash.
    pub url: String,
    pub api_key_env_var: String,
    pub sync_interval: Duration,
    /// What to list or fetch.
    pub patterns: Vec<RepoPattern>,
    /// Files mirrored besides `README.md` and the safetensors headers.
    pub files: Vec<String>,
    pub max_concurrency: usize,
}

/// One `includedModels` entry, as it drives fetching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoPattern {
    /// `org/model`: fetched directly.
    Exact(String),
    /// `org/*`: every model of the author.
    Author(String),
    /// `org/prefix*`: the author's models whose name starts with `prefix` (checked locally, since Hub
    /// search is fuzzy).
    Prefix { author: String, prefix: String },
}

impl RepoPattern {
    fn parse(text: &str) -> Result<RepoPattern, String> {
        let invalid = |why: &str| Err(format!("includedModels pattern {text:?}: {why}"));
        let Some((author, model)) = text.split_once('/') else {
            return invalid("use org/model, org/* or org/prefix*");
        };
        if author.is_empty() || author.contains('*') {
            return invalid("the organization part must be a name without wildcards");
        }
        if model.is_empty() {
            return invalid("the model part is empty");
        }
        match model.find('*') {
            None if !model.contains('/') => Ok(RepoPattern::Exact(text.to_owned())),
            Some(star) if star == model.len() - 1 && !model[..star].contains('/') => {
                let prefix = &model[..star];
                if prefix.is_empty() {
                    Ok(RepoPattern::Author(author.to_owned()))
                } else {
                    Ok(RepoPattern::Prefix { author: author.to_owned(), prefix: prefix.to_owned() })
                }
            }
            _ => invalid("only a trailing * is supported in the model part"),
        }
    }
}

impl HfParams {
    /// Validates an `hf` source's properties and patterns. Returns the settings and the effective include
    /// and exclude patterns (prefixed with `allowedOrganization` when it is set).
    pub fn parse(
        properties: &BTreeMap<String, Json>,
        included: &[String],
        excluded: &[String],
    ) -> Result<(HfParams, Vec<String>, Vec<String>), String> {
        let text = |key: &str| -> Result<Option<String>, String> {
            match properties.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(value)) if !value.trim().is_empty() => Ok(Some(value.trim().to_owned())),
                Some(_) => Err(format!("properties.{key} must be a non-empty string")),
            }
        };
        let organization = text("allowedOrganization")?;
        let scope = |patterns: &[String]| -> Vec<String> {
            match &organization {
                Some(org) => patterns.iter().map(|pattern| format!("{org}/{pattern}")).collect(),
                None => patterns.to_vec(),
            }
        };
        let mut included = scope(included);
        let excluded = scope(excluded);
        if included.is_empty() {
            match &organization {
                Some(org) => included.push(format!("{org}/*")),
                None => return Err("an hf source needs includedModels (or properties.allowedOrganization)".into()),
            }
        }
        let patterns = included.iter().map(|pattern| RepoPattern::parse(pattern)).collect::<Result<Vec<_>, _>>()?;
        let url = text("url")?.unwrap_or_else(|| DEFAULT_URL.to_owned()).trim_end_matches('/').to_owned();
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(format!("properties.url {url:?} must be an http:// or https:// URL"));
        }
        let sync_interval = match text("syncInterval")? {
            Some(duration) => parse_go_duration(&duration)
                .ok_or_else(|| format!("properties.syncInterval {duration:?} is not a duration such as 30m or 24h"))?,
            None => DEFAULT_SYNC_INTERVAL,
        };
        let files = match properties.get("files") {
            None | Some(Json::Null) => DEFAULT_FILES.iter().map(|file| (*file).to_owned()).collect(),
            Some(Json::Array(files)) => files
                .iter()
                .map(|file| file.as_str().filter(|file| !file.is_empty()).map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or("properties.files must be a list of file paths")?,
            Some(_) => return Err("properties.files must be a list of file paths".into()),
        };
        let max_concurrency = match properties.get("maxConcurrency") {
            None | Some(Json::Null) => DEFAULT_CONCURRENCY,
            Some(value) => value
                .as_u64()
                .filter(|count| (1..=64).contains(count))
                .ok_or("properties.maxConcurrency must be an integer from 1 to 64")?
                as usize,
        };
        let api_key_env_var = text("apiKeyEnvVar")?.unwrap_or_else(|| DEFAULT_API_KEY_ENV_VAR.to_owned());
        let params = HfParams { url, api_key_env_var, sync_interval, patterns, files, max_concurrency };
        Ok((params, included, excluded))
    }

    /// The API key from the configured environment variable; like Kubeflow, a key not starting with `hf_`
    /// is ignored.
    pub fn api_key(&self) -> Option<String> {
        std::env::var(&self.api_key_env_var).ok().filter(|key| key.starts_with("hf_"))
    }
}

/// Parses a Go duration (`90s`, `30m`, `1h30m`, `24h`, `500ms`); `None` when malformed or too large to
/// represent (found by fuzzing: a huge value used to panic).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total = total.checked_add(Duration::try_from_secs_f64(number * seconds).ok()?)?;
    }
    Some(total)
}

/// Maps a Hub `model_info` document (and its README) to a catalog record, as Kubeflow does: license, its
/// link, languages and description from the card data; `author` → provider; `pipeline_tag` → tasks;
/// `library_name`; Hub dates → times. modelcat adds the tags, downloads, likes and gating as properties.
pub fn model_record(info: &Json, readme: Option<&str>, synced_at: i64) -> Option<ModelRecord> {
    let id = info.get("id")?.as_str()?.to_owned();
    let text = |value: Option<&Json>| value.and_then(Json::as_str).map(str::to_owned);
    let card = info.get("cardData");
    let card_text = |key: &str| text(card.and_then(|card| card.get(key)));
    let strings = |value: Option<&Json>| -> Vec<String> {
        match value {
            Some(Json::String(one)) => vec![one.clone()],
            Some(Json::Array(many)) => many.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        }
    };
    let tasks = strings(info.get("pipeline_tag"));
    let mut properties = BTreeMap::new();
    properties.insert("last_synced".to_owned(), MetadataValue::String(synced_at.to_string()));
    properties.insert("model_type".to_owned(), MetadataValue::String(model_type(&tasks).to_owned()));
    for (key, wire) in [("downloads", "downloads"), ("likes", "likes")] {
        if let Some(count) = info.get(wire).and_then(Json::as_i64) {
            properties.insert(key.to_owned(), MetadataValue::Int(count));
        }
    }
    if let Some(sha) = info.get("sha").and_then(Json::as_str) {
        properties.insert("hf_sha".to_owned(), MetadataValue::String(sha.to_owned()));
    }
    let access = match info.get("gated") {
        Some(Json::String(kind)) => format!("gated_{kind}"),
        _ if info.get("private").and_then(Json::as_bool) == Some(true) => "private".to_owned(),
        _ => "public".to_owned(),
    };
    properties.insert("hf_access_type".to_owned(), MetadataValue::String(access));
    let tags = strings(info.get("tags"));
    if !tags.is_empty() {
        properties.insert("tags".to_owned(), MetadataValue::String(tags.join(",")));
    }
    let license =
        card_text("license").or_else(|| tags.iter().find_map(|tag| tag.strip_prefix("license:")).map(str::to_owned));
    let readme = readme.map(strip_front_matter).filter(|body| !body.trim().is_empty()).map(str::to_owned);
    let description = card_text("description").or_else(|| readme.as_deref().and_then(first_paragraph));
    Some(ModelRecord {
        description,
        readme,
        provider: text(info.get("author")).or_else(|| id.split_once('/').map(|(author, _)| author.to_owned())),
        license,
        license_link: card_text("license_link"),
        library_name: text(info.get("library_name")),
        language: strings(card.and_then(|card| card.get("language"))),
        tasks,
        external_id: None,
        create_time: info.get("createdAt").and_then(Json::as_str).and_then(parse_hub_time),
        update_time: info.get("lastModified").and_then(Json::as_str).and_then(parse_hub_time),
        properties,
        artifacts: vec![ArtifactRecord {
            kind: ArtifactKind::Model { uri: format!("hf://{id}") },
            common: ArtifactCommon::default(),
        }],
        name: id,
        maturity: None,
        logo: None,
    })
}

/// Kubeflow's `model_type`: generative wins over predictive.
fn model_type(tasks: &[String]) -> &'static str {
    const GENERATIVE: &[&str] = &[
        "text-generation",
        "text2text-generation",
        "image-text-to-text",
        "text-to-image",
        "text-to-speech",
        "text-to-audio",
        "text-to-video",
        "image-to-image",
        "image-to-text",
        "summarization",
        "translation",
        "conversational",
    ];
    if tasks.iter().any(|task| GENERATIVE.contains(&task.as_str())) {
        "generative"
    } else if tasks.is_empty() {
        "unknown"
    } else {
        "predictive"
    }
}

/// A model card without its YAML front matter.
pub fn strip_front_matter(readme: &str) -> &str {
    let Some(rest) = readme.strip_prefix("---\n").or_else(|| readme.strip_prefix("---\r\n")) else { return readme };
    match rest.find("\n---") {
        Some(end) => rest[end + 4..].trim_start_matches(['\r', '\n']),
        None => readme,
    }
}

/// The first prose paragraph of a card (skipping headings, badges and HTML), shortened to 300 characters.
fn first_paragraph(body: &str) -> Option<String> {
    let paragraph = body
        .split("\n\n")
        .map(str::trim)
        .find(|block| !block.is_empty() && !block.starts_with(['#', '<', '!', '[', '|', '`', '-']))?;
    let flat = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(match flat.char_indices().nth(300) {
        Some((end, _)) => format!("{}…", &flat[..end]),
        None => flat,
    })
}

/// Milliseconds since the epoch of a Hub date (`2024-02-19T11:06:12.000Z`).
pub fn parse_hub_time(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[10] != b'T' || !text.ends_with('Z') {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let millis = match text.get(19..text.len() - 1) {
        Some(fraction) if fraction.starts_with('.') && fraction.len() > 1 => {
            let digits: String = fraction[1..].chars().chain("000".chars()).take(3).collect();
            digits.parse::<i64>().ok()?
        }
        _ => 0,
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Formats milliseconds since the epoch as a Hub date: `2024-02-19T11:06:12.000Z`.
pub fn format_hub_time(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let rest = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (rest / 3_600_000, rest / 60_000 % 60);
    let (second, milli) = (rest / 1000 % 60, rest % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, Json)]) -> BTreeMap<String, Json> {
        pairs.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect()
    }

    #[test]
    fn go_durations_parse_and_huge_ones_are_refused() {
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("10x"), None);
        // Found by fuzzing (fuzz/fuzz_targets/hub_model.rs): these used to panic.
        assert_eq!(parse_go_duration(&format!("{}h", "9".repeat(40))), None);
        assert_eq!(parse_go_duration("4000000000000000h4000000000000000h"), None);
    }

    #[test]
    fn patterns_follow_kubeflow() {
        let included = ["org/m1".to_owned(), "org/*".to_owned(), "other/gpt*".to_owned()];
        let (params, _, _) = HfParams::parse(&BTreeMap::new(), &included, &[]).unwrap();
        assert_eq!(
            params.patterns,
            vec![
                RepoPattern::Exact("org/m1".into()),
                RepoPattern::Author("org".into()),
                RepoPattern::Prefix { author: "other".into(), prefix: "gpt".into() },
            ]
        );
        assert_eq!(params.url, DEFAULT_URL);
        assert_eq!(params.sync_interval, DEFAULT_SYNC_INTERVAL);
        for bad in ["*", "*/*", "*/x", "o*/x", "org/", "org/a*b", "noslash"] {
            assert!(HfParams::parse(&BTreeMap::new(), &[bad.to_owned()], &[]).is_err(), "{bad} accepted");
        }
        assert!(HfParams::parse(&BTreeMap::new(), &[], &[]).is_err());
    }

    #[test]
    fn allowed_organization_scopes_patterns() {
        let properties = props(&[
            ("allowedOrganization", Json::from("org")),
            ("url", Json::from("http://hub.local:9/")),
            ("syncInterval", Json::from("1h30m")),
            ("maxConcurrency", Json::from(4)),
        ]);
        let (params, included, excluded) = HfParams::parse(&properties, &[], &["m2".to_owned()]).unwrap();
        assert_eq!(params.patterns, vec![RepoPattern::Author("org".into())]);
        assert_eq!((included, excluded), (vec!["org/*".to_owned()], vec!["org/m2".to_owned()]));
        assert_eq!(params.url, "http://hub.local:9");
        assert_eq!(params.sync_interval, Duration::from_secs(5400));
        assert_eq!(params.max_concurrency, 4);
        let bad = props(&[("syncInterval", Json::from("soon"))]);
        assert!(HfParams::parse(&bad, &["a/b".to_owned()], &[]).unwrap_err().contains("syncInterval"));
    }

    #[test]
    fn hub_times_round_trip() {
        let millis = parse_hub_time("2024-02-19T11:06:12.000Z").unwrap();
        assert_eq!(millis, 1_708_340_772_000);
        assert_eq!(format_hub_time(millis), "2024-02-19T11:06:12.000Z");
        assert_eq!(parse_hub_time("2022-03-02T23:29:04.5Z"), Some(1_646_263_744_500));
        assert_eq!(parse_hub_time("2022-03-02T23:29:04+00:00"), None);
    }

    #[test]
    fn model_info_maps_to_a_record() {
        let info = serde_json::json!({
            "id": "org/m1", "author": "org", "sha": "abc", "pipeline_tag": "text-generation",
            "library_name": "transformers", "tags": ["transformers", "license:mit"], "downloads": 7,
            "createdAt": "2024-01-02T03:04:05.000Z", "lastModified": "2024-02-19T11:06:12.000Z",
            "cardData": {"license": "mit", "language": ["en", "fr"]}, "gated": "manual",
        });
        let record = model_record(&info, Some("---\nlicense: mit\n---\n# M1\n\nA small model.\n"), 5).unwrap();
        assert_eq!(record.name, "org/m1");
        assert_eq!(record.provider.as_deref(), Some("org"));
        assert_eq!(record.license.as_deref(), Some("mit"));
        assert_eq!(record.tasks, vec!["text-generation"]);
        assert_eq!(record.language, vec!["en", "fr"]);
        assert_eq!(record.description.as_deref(), Some("A small model."));
        assert_eq!(record.readme.as_deref(), Some("# M1\n\nA small model.\n"));
        assert_eq!(record.properties["model_type"], MetadataValue::String("generative".into()));
        assert_eq!(record.properties["hf_access_type"], MetadataValue::String("gated_manual".into()));
        assert_eq!(record.properties["downloads"], MetadataValue::Int(7));
        assert_eq!(record.update_time, Some(1_708_340_772_000));
        assert!(matches!(&record.artifacts[0].kind, ArtifactKind::Model { uri } if uri == "hf://org/m1"));
    }
}
