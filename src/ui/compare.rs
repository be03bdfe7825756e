//! `/ui/compare?m={source}/{name}&m=…`: two to four catalog models side by side — their facts, headline
//! metrics and properties, one column each, with the rows where they differ marked.

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use modelcat_index::StoredModel;
use modelcat_sources::ArtifactKind;

use super::frame::Frame;
use super::{Readable, UiError, format};
use crate::api::params::Params;
use crate::app::AppState;

/// How many models a comparison takes.
const MODELS: std::ops::RangeInclusive<usize> = 2..=4;

struct Column {
    name: String,
    href: String,
    /// The comparison without this model.
    remove: String,
}

struct Row {
    label: String,
    cells: Vec<String>,
    differs: bool,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    frame: Frame,
    columns: Vec<Column>,
    rows: Vec<Row>,
}

/// `GET /ui/compare`.
pub async fn page(State(state): State<AppState>, readable: Readable, params: Params) -> Result<Response, UiError> {
    let picked: Vec<&str> = params.every("m").into_iter().filter(|value| !value.is_empty()).collect();
    if !MODELS.contains(&picked.len()) {
        return Err(UiError::bad_request(format!(
            "Pick two to four models to compare ({} given): tick \"Compare\" on the search results.",
            picked.len()
        )));
    }
    let mut models = Vec::new();
    for key in &picked {
        let (source, name) =
            key.split_once('/').ok_or_else(|| UiError::bad_request(format!("{key:?} is not source/name")))?;
        models.push(super::catalog_model(&state, &readable, source, name).await?);
    }
    let columns = picked
        .iter()
        .zip(&models)
        .map(|(key, model)| {
            let rest: Vec<(String, String)> =
                picked.iter().filter(|other| *other != key).map(|other| ("m".to_owned(), other.to_string())).collect();
            Column {
                name: model.record.name.clone(),
                href: super::model::url(&model.source_id, &model.record.name, None),
                remove: format!("/ui/compare?{}", format::query(&rest)),
            }
        })
        .collect();
    Ok(super::render(&ComparePage { frame: Frame::default(), columns, rows: rows(&models) }))
}

fn rows(models: &[StoredModel]) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row = |label: &str, cell: &dyn Fn(&StoredModel) -> String| {
        let cells: Vec<String> = models.iter().map(cell).collect();
        let differs = cells.iter().any(|value| *value != cells[0]);
        rows.push(Row { label: label.to_owned(), cells, differs });
    };
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    row("Source", &|model| model.source_id.clone());
    row("Provider", &|model| text(&model.record.provider));
    row("Tasks", &|model| model.record.tasks.join(", "));
    row("License", &|model| text(&model.record.license));
    row("Library", &|model| text(&model.record.library_name));
    row("Maturity", &|model| text(&model.record.maturity));
    row("Languages", &|model| model.record.language.join(", "));
    row("Updated", &|model| model.record.update_time.map(format::date).unwrap_or_default());
    row("Accuracy (best)", &|model| best(model, "overall_average", f64::max));
    row("TTFT p90 (best, ms)", &|model| best(model, "ttft_p90", f64::min));
    row("Requests per second (best)", &|model| best(model, "requests_per_second", f64::max));
    row("Model artifacts", &|model| {
        let count = model.record.artifacts.iter().filter(|a| matches!(a.kind, ArtifactKind::Model { .. })).count();
        count.to_string()
    });
    let names: BTreeSet<&String> = models.iter().flat_map(|model| model.record.properties.keys()).collect();
    for name in names {
        row(name, &|model| model.record.properties.get(name).map(format::value).unwrap_or_default());
    }
    rows
}

/// The best value of a numeric artifact property across a model's artifacts, as text.
fn best(model: &StoredModel, property: &str, pick: fn(f64, f64) -> f64) -> String {
    super::model::best_metric(&model.record, property, pick).map(format::number).unwrap_or_default()
}
