//! `/ui/models/{source}/{name}`: one model, one URL per tab (`?tab=card|artifacts|performance|source`).
//!
//! - **Card**: the README ([`super::markdown`]), front matter as a table. A Hub mirror's relative links
//!   resolve to its files (`/{repo}/resolve/main/…`); others' are dropped.
//! - **Artifacts**: each artifact with its URI (and a copy button) or metrics type, and its properties.
//! - **Performance**: latency against requests per second as an SVG chart, with a latency percentile
//!   (`latency=ttft_p90`) and a hardware (`hardware=H100`) selector, the best trade-offs marked (the
//!   catalog API's `recommendations`); the table sorts by any column (`sort`, `order`) and downloads as
//!   CSV (`format=csv`).
//! - **Source**: where the model comes from: its source, ids, times and provenance properties.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use modelcat_index::StoredModel;
use modelcat_sources::config::SourceKind;
use modelcat_sources::{ArtifactKind, ArtifactRecord};

use super::chart::{self, Point};
use super::frame::Frame;
use super::{Readable, UiError, format, markdown};
use crate::api::params::Params;
use crate::app::AppState;
use crate::catalog::perf::{self, PerfProperties};

const TABS: &[(&str, &str)] =
    &[("card", "Card"), ("artifacts", "Artifacts"), ("performance", "Performance"), ("source", "Source")];

/// The URL of a model's page, at a tab (the card by default).
pub fn url(source_id: &str, name: &str, tab: Option<&str>) -> String {
    let base = format!("/ui/models/{}/{}", format::path(source_id), format::path(name));
    match tab {
        None | Some("card") => base,
        Some(tab) => format!("{base}?tab={tab}"),
    }
}

struct Tab {
    label: &'static str,
    href: String,
    current: bool,
}

struct ArtifactView {
    kind: &'static str,
    title: String,
    uri: Option<String>,
    properties: Vec<(String, String)>,
}

struct Selector {
    value: String,
    selected: bool,
}

struct PerfView {
    chart: String,
    legend: Vec<(String, &'static str)>,
    latencies: Vec<Selector>,
    hardware: Vec<Selector>,
    columns: Vec<(String, String, &'static str)>,
    rows: Vec<Vec<String>>,
    /// The table's CSV download: its URL, and its text.
    csv_href: String,
    csv: String,
    best: usize,
}

enum Body {
    Card { front_matter: Vec<(String, String)>, html: String },
    Artifacts(Vec<ArtifactView>),
    Performance(Option<PerfView>),
    Source(Vec<(String, String)>),
}

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    frame: Frame,
    /// This page's oEmbed description.
    oembed: String,
    /// The page with the site's chrome (an embed links to it).
    full: String,
    source_id: String,
    name: String,
    provider: String,
    description: String,
    facts: Vec<(&'static str, String)>,
    tabs: Vec<Tab>,
    body: Body,
    api: String,
}

/// `GET /ui/models/{source_id}/{*name}`.
pub async fn page(
    State(state): State<AppState>,
    readable: Readable,
    frame: Frame,
    Path((source_id, name)): Path<(String, String)>,
    params: Params,
) -> Result<Response, UiError> {
    let model = super::catalog_model(&state, &readable, &source_id, &name).await?;
    let view = state.catalog.view();
    let source = view
        .sources
        .iter()
        .find(|source| source.config.id.as_str() == source_id)
        .ok_or_else(|| UiError::not_found(format!("There is no source {source_id:?}.")))?;
    let tab = params.get("tab").filter(|tab| !tab.is_empty()).unwrap_or("card");
    if !TABS.iter().any(|(known, _)| *known == tab) {
        return Err(UiError::bad_request(format!(
            "tab {tab:?} is unknown: use card, artifacts, performance or source"
        )));
    }
    let record = &model.record;
    let body = match tab {
        "artifacts" => Body::Artifacts(record.artifacts.iter().map(artifact).collect()),
        "performance" => {
            let view = performance(&model, &params)?;
            if params.get("format") == Some("csv") {
                let csv = view.map(|view| view.csv).unwrap_or_default();
                let file = format!("attachment; filename=\"{}-performance.csv\"", record.name.replace(['/', '"'], "_"));
                let mut response = csv.into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
                if let Ok(value) = HeaderValue::from_str(&file) {
                    response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
                }
                return Ok(response);
            }
            Body::Performance(view)
        }
        "source" => Body::Source(provenance(&model, &source.config.name, &source.config.kind)),
        _ => {
            let base = match &source.config.kind {
                Ok(SourceKind::Hf(_)) => Some(format!("/{}/resolve/main/", format::path(&record.name))),
                _ => None,
            };
            let rendered = record.readme.as_deref().map(|readme| markdown::render(readme, base.as_deref()));
            let rendered = rendered.unwrap_or_default();
            Body::Card { front_matter: rendered.front_matter, html: rendered.html }
        }
    };
    let frame_pairs = frame.pairs();
    let mut facts = Vec::new();
    for (label, value) in [
        ("Source", Some(source.config.name.clone())),
        ("Tasks", Some(record.tasks.join(", ")).filter(|tasks| !tasks.is_empty())),
        ("License", record.license.clone()),
        ("Library", record.library_name.clone()),
        ("Maturity", record.maturity.clone()),
        ("Languages", Some(record.language.join(", ")).filter(|languages| !languages.is_empty())),
        ("Updated", record.update_time.map(format::date)),
    ] {
        if let Some(value) = value {
            facts.push((label, value));
        }
    }
    let full = url(&source_id, &record.name, Some(tab));
    let page = ModelPage {
        frame,
        oembed: format!("/ui/oembed?{}", format::query(&[("url".to_owned(), url(&source_id, &record.name, None))])),
        full,
        source_id: source_id.clone(),
        name: record.name.clone(),
        provider: record.provider.clone().unwrap_or_default(),
        description: record.description.clone().unwrap_or_default(),
        facts,
        tabs: TABS
            .iter()
            .map(|(id, label)| Tab {
                label,
                href: framed(url(&source_id, &record.name, Some(id)), &frame_pairs),
                current: *id == tab,
            })
            .collect(),
        body,
        api: format!(
            "{}/sources/{}/models/{}",
            crate::api::catalog::BASE_PATH,
            format::path(&source_id),
            format::path(&record.name)
        ),
    };
    Ok(super::render(&page))
}

/// The best of a numeric artifact property across a model's artifacts, by `pick` (`f64::max`, `f64::min`).
pub(super) fn best_metric(
    record: &modelcat_sources::ModelRecord,
    property: &str,
    pick: fn(f64, f64) -> f64,
) -> Option<f64> {
    let values = record.artifacts.iter().filter_map(|artifact| artifact.common.properties.get(property));
    values.filter_map(format::as_number).reduce(pick)
}

/// A UI URL with the framing parameters added.
fn framed(url: String, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return url;
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{}", format::query(pairs))
}

fn artifact(artifact: &ArtifactRecord) -> ArtifactView {
    let (kind, uri, detail) = match &artifact.kind {
        ArtifactKind::Model { uri } => ("Model", Some(uri.clone()), None),
        ArtifactKind::Metrics { metrics_type } => ("Metrics", None, Some(metrics_type.clone())),
    };
    let common = &artifact.common;
    let title = common.name.clone().or(detail).unwrap_or_else(|| kind.to_lowercase());
    let properties = common.properties.iter().map(|(name, value)| (name.clone(), format::value(value))).collect();
    ArtifactView { kind, title, uri, properties }
}

fn provenance(model: &StoredModel, source_name: &str, kind: &Result<SourceKind, String>) -> Vec<(String, String)> {
    let record = &model.record;
    let kind = match kind {
        Ok(SourceKind::Yaml { .. }) => "YAML catalog",
        Ok(SourceKind::Hf(_)) => "Hugging Face Hub mirror",
        Ok(SourceKind::Peer(_)) => "peer registry",
        Ok(SourceKind::Registry) => "this registry",
        Err(_) => "unavailable",
    };
    let mut rows = vec![
        ("Source".to_owned(), format!("{source_name} ({})", model.source_id)),
        ("Source type".to_owned(), kind.to_owned()),
        ("Catalog id".to_owned(), model.id.to_string()),
    ];
    if let Some(external) = &record.external_id {
        rows.push(("External id".to_owned(), external.clone()));
    }
    if let Some(created) = record.create_time {
        rows.push(("First seen".to_owned(), format::date(created)));
    }
    if let Some(updated) = record.update_time {
        rows.push(("Last changed".to_owned(), format::date(updated)));
    }
    if let Some(link) = &record.license_link {
        rows.push(("License link".to_owned(), link.clone()));
    }
    for name in ["origin_instance", "origin_source", "origin_id"] {
        if let Some(value) = record.properties.get(name) {
            rows.push((name.replace('_', " "), format::value(value)));
        }
    }
    rows
}

/// The performance tab: `None` when the model has no performance artifacts.
fn performance(model: &StoredModel, params: &Params) -> Result<Option<PerfView>, UiError> {
    let measured: Vec<&ArtifactRecord> = model
        .record
        .artifacts
        .iter()
        .filter(|artifact| matches!(&artifact.kind, ArtifactKind::Metrics { metrics_type } if metrics_type == "performance-metrics"))
        .collect();
    if measured.is_empty() {
        return Ok(None);
    }
    let names = PerfProperties::default();
    let mut numeric: Vec<String> = measured
        .iter()
        .flat_map(|artifact| artifact.common.properties.iter())
        .filter(|(_, value)| format::as_number(value).is_some())
        .map(|(name, _)| name.clone())
        .collect();
    numeric.sort();
    numeric.dedup();
    let latencies: Vec<String> = numeric
        .iter()
        .filter(|name| {
            **name != names.rps
                && **name != names.hardware_count
                && name
                    .rsplit('_')
                    .next()
                    .is_some_and(|tail| tail.starts_with('p') && tail[1..].parse::<u32>().is_ok() || tail == "mean")
        })
        .cloned()
        .collect();
    let latency = params.get("latency").filter(|name| !name.is_empty()).unwrap_or(&names.latency).to_owned();
    if !latencies.contains(&latency) && !latencies.is_empty() {
        return Err(UiError::bad_request(format!(
            "latency {latency:?} is not measured: use one of {}",
            latencies.join(", ")
        )));
    }
    let hardware_of = |artifact: &ArtifactRecord| {
        artifact.common.properties.get(&names.hardware_type).map(format::value).unwrap_or_else(|| "unknown".to_owned())
    };
    let mut hardware: Vec<String> = measured.iter().map(|artifact| hardware_of(artifact)).collect();
    hardware.sort();
    hardware.dedup();
    let chosen = params.get("hardware").filter(|value| !value.is_empty() && *value != "all");
    if let Some(chosen) = chosen.filter(|chosen| !hardware.iter().any(|known| known == chosen)) {
        return Err(UiError::bad_request(format!(
            "hardware {chosen:?} is not measured: use one of {}",
            hardware.join(", ")
        )));
    }
    let shown: Vec<&ArtifactRecord> =
        measured.into_iter().filter(|artifact| chosen.is_none_or(|chosen| hardware_of(artifact) == chosen)).collect();
    let properties: Vec<_> = shown.iter().map(|artifact| &artifact.common.properties).collect();
    let selection = PerfProperties { latency: latency.clone(), ..PerfProperties::default() };
    let best = perf::recommend(&properties, &selection);
    let points: Vec<Point> = shown
        .iter()
        .enumerate()
        .filter_map(|(at, artifact)| {
            let properties = &artifact.common.properties;
            let x = properties.get(&names.rps).and_then(format::as_number)?;
            let y = properties.get(&latency).and_then(format::as_number)?;
            let count = properties.get(&names.hardware_count).map(format::value).unwrap_or_else(|| "1".to_owned());
            let series = hardware_of(artifact);
            let label = format!("{count} × {series}: {} rps, {latency} {} ms", format::number(x), format::number(y));
            Some(Point { x, y, series, best: best.contains(&at), label })
        })
        .collect();
    let description = format!(
        "{} measurements of {latency} in milliseconds against requests per second; {} marked as best trade-offs.",
        points.len(),
        best.len()
    );
    // The table: hardware first, then every numeric property; sorted by the chosen column.
    let mut columns = vec![names.hardware_type.clone()];
    columns.extend(numeric.iter().filter(|name| **name != names.hardware_type).cloned());
    let sort = params.get("sort").filter(|sort| !sort.is_empty()).unwrap_or(&latency).to_owned();
    if !columns.contains(&sort) {
        return Err(UiError::bad_request(format!("sort {sort:?} is not a column: use one of {}", columns.join(", "))));
    }
    let descending = params.get("order") == Some("desc");
    let mut rows: Vec<(bool, Vec<String>, Option<f64>)> = shown
        .iter()
        .enumerate()
        .map(|(at, artifact)| {
            let properties = &artifact.common.properties;
            let cells =
                columns.iter().map(|column| properties.get(column).map(format::value).unwrap_or_default()).collect();
            (best.contains(&at), cells, properties.get(&sort).and_then(format::as_number))
        })
        .collect();
    let position = columns.iter().position(|column| *column == sort).unwrap_or(0);
    rows.sort_by(|a, b| {
        let order = match (a.2, b.2) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => a.1[position].cmp(&b.1[position]),
        };
        if descending { order.reverse() } else { order }
    });
    let base = url(&model.source_id, &model.record.name, Some("performance"));
    let keep = |pairs: &mut Vec<(String, String)>| {
        pairs.push(("latency".to_owned(), latency.clone()));
        if let Some(chosen) = chosen {
            pairs.push(("hardware".to_owned(), chosen.to_owned()));
        }
    };
    let header = |column: &String| {
        let next_desc = *column == sort && !descending;
        let mut pairs = Vec::new();
        keep(&mut pairs);
        pairs.push(("sort".to_owned(), column.clone()));
        if next_desc {
            pairs.push(("order".to_owned(), "desc".to_owned()));
        }
        let state = match (*column == sort, descending) {
            (false, _) => "none",
            (true, false) => "ascending",
            (true, true) => "descending",
        };
        (column.clone(), format!("{base}&{}", format::query(&pairs)), state)
    };
    let mut csv_pairs = Vec::new();
    keep(&mut csv_pairs);
    csv_pairs.push(("format".to_owned(), "csv".to_owned()));
    let mut text = String::new();
    text.push_str(&csv_line(&std::iter::once("best".to_owned()).chain(columns.iter().cloned()).collect::<Vec<_>>()));
    for (best, cells, _) in &rows {
        text.push_str(&csv_line(&std::iter::once(best.to_string()).chain(cells.iter().cloned()).collect::<Vec<_>>()));
    }
    Ok(Some(PerfView {
        chart: chart::scatter(&points, "requests per second", &format!("{latency} (ms)"), &description),
        legend: chart::legend(&points),
        latencies: latencies.iter().map(|name| Selector { value: name.clone(), selected: *name == latency }).collect(),
        hardware: std::iter::once("all".to_owned())
            .chain(hardware)
            .map(|value| Selector { selected: chosen.map_or(value == "all", |chosen| chosen == value), value })
            .collect(),
        columns: columns.iter().map(header).collect(),
        best: rows.iter().filter(|(best, _, _)| *best).count(),
        rows: rows
            .into_iter()
            .map(|(best, mut cells, _)| {
                cells.insert(0, if best { "★".to_owned() } else { String::new() });
                cells
            })
            .collect(),
        csv_href: format!("{base}&{}", format::query(&csv_pairs)),
        csv: text,
    }))
}

/// One CSV line (RFC 4180 quoting; cells that a spreadsheet would run as formulas are prefixed with `'`).
fn csv_line(cells: &[String]) -> String {
    let quoted: Vec<String> = cells
        .iter()
        .map(|cell| {
            let cell = if cell.starts_with(['=', '+', '-', '@']) && cell.parse::<f64>().is_err() {
                format!("'{cell}")
            } else {
                cell.clone()
            };
            if cell.contains([',', '"', '\n', '\r']) { format!("\"{}\"", cell.replace('"', "\"\"")) } else { cell }
        })
        .collect();
    format!("{}\r\n", quoted.join(","))
}
