//! `/ui`: catalog search with live facet counts, range filters, sorting and paging.
//!
//! The URL holds the whole state: `q`; one parameter per facet, repeated for several values
//! (`license=mit&license=apache-2.0`, `source=…`); `min.<property>` / `max.<property>` on numeric
//! properties under their `filter_options` names; `sort` (`relevance`, `name`, `updated`, `created`, or
//! `low:<property>` / `high:<property>`); `page`. Empty values are ignored, so a plain GET form works.
//!
//! Facets count disjunctively: values within a facet are ORed, facets ANDed, and each facet's counts
//! leave out its own selection, so a user sees what picking another value would give. A value that would
//! give nothing is shown disabled, not hidden.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use modelcat_index::{PropertyOptions, SortBy};

use super::frame::Frame;
use super::{Readable, UiError, format};
use crate::api::params::Params;
use crate::app::AppState;
use crate::catalog::OwnedSearch;
use crate::filter::{CompareOp, Expr, Literal, Property, ValueType};

/// Results per page.
const PAGE_SIZE: usize = 20;
/// Facets with more values than this get a filter box of their own.
const LONG_FACET: usize = 8;

/// The facets shown, as (URL parameter, index facet, label).
const FACETS: &[(&str, &str, &str)] = &[
    ("source", "source_id", "Source"),
    ("provider", "provider", "Provider"),
    ("tasks", "tasks", "Task"),
    ("license", "license", "License"),
    ("language", "language", "Language"),
    ("libraryName", "libraryName", "Library"),
    ("maturity", "maturity", "Maturity"),
];

/// A search as the URL states it.
#[derive(Debug, Clone, Default)]
struct SearchState {
    q: String,
    /// URL parameter → selected values, in the order of [`FACETS`].
    selected: BTreeMap<&'static str, Vec<String>>,
    /// (`filter_options` name, min, max).
    ranges: Vec<(String, Option<f64>, Option<f64>)>,
    sort: String,
    page: usize,
}

impl SearchState {
    fn parse(params: &Params) -> Result<SearchState, UiError> {
        let mut state = SearchState {
            q: params.get("q").unwrap_or_default().trim().to_owned(),
            sort: params.get("sort").unwrap_or_default().to_owned(),
            ..SearchState::default()
        };
        for (parameter, _, _) in FACETS {
            let mut values: Vec<String> =
                params.every(parameter).into_iter().filter(|value| !value.is_empty()).map(str::to_owned).collect();
            values.dedup();
            if !values.is_empty() {
                state.selected.insert(parameter, values);
            }
        }
        let mut ranges: BTreeMap<String, (Option<f64>, Option<f64>)> = BTreeMap::new();
        for (key, value) in params.pairs().iter().filter(|(_, value)| !value.trim().is_empty()) {
            let (bound, property) = match key.split_once('.') {
                Some(("min", property)) => (0, property),
                Some(("max", property)) => (1, property),
                _ => continue,
            };
            let number: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|number: &f64| number.is_finite())
                .ok_or_else(|| UiError::bad_request(format!("{key}: {value:?} is not a number")))?;
            numeric_property(property)
                .ok_or_else(|| UiError::bad_request(format!("{key}: {property:?} is not a numeric property")))?;
            let range = ranges.entry(property.to_owned()).or_default();
            if bound == 0 { range.0 = Some(number) } else { range.1 = Some(number) }
        }
        state.ranges = ranges.into_iter().map(|(property, (min, max))| (property, min, max)).collect();
        state.page = match params.get("page").filter(|page| !page.is_empty()) {
            None => 1,
            Some(page) => page
                .parse()
                .ok()
                .filter(|page| (1..=10_000).contains(page))
                .ok_or_else(|| UiError::bad_request(format!("page {page:?} is not a page number (1 to 10000)")))?,
        };
        if !state.sort.is_empty() && sort_by(&state.sort).is_none() {
            return Err(UiError::bad_request(format!(
                "sort {:?} is unknown: use relevance, name, updated, created, low:<property> or high:<property>",
                state.sort
            )));
        }
        Ok(state)
    }

    /// The sort in effect: relevance for a text query, name otherwise, unless one is chosen.
    fn effective_sort(&self) -> &str {
        match self.sort.as_str() {
            "" if self.q.is_empty() => "name",
            "" => "relevance",
            sort => sort,
        }
    }

    /// The URL of this state (`None` drops a page number of 1 and empty parts).
    fn url(&self) -> String {
        let mut pairs = Vec::new();
        if !self.q.is_empty() {
            pairs.push(("q".to_owned(), self.q.clone()));
        }
        for (parameter, values) in &self.selected {
            pairs.extend(values.iter().map(|value| (parameter.to_string(), value.clone())));
        }
        for (property, min, max) in &self.ranges {
            if let Some(min) = min {
                pairs.push((format!("min.{property}"), format::number(*min)));
            }
            if let Some(max) = max {
                pairs.push((format!("max.{property}"), format::number(*max)));
            }
        }
        if !self.sort.is_empty() {
            pairs.push(("sort".to_owned(), self.sort.clone()));
        }
        if self.page > 1 {
            pairs.push(("page".to_owned(), self.page.to_string()));
        }
        match format::query(&pairs) {
            query if query.is_empty() => super::BASE_PATH.to_owned(),
            query => format!("{}?{query}", super::BASE_PATH),
        }
    }

    /// The filter of every selection but `except`'s facet (sources are not a filter: see [`Self::sources`]).
    fn filter(&self, except: Option<&str>) -> Option<Expr> {
        let mut parts = Vec::new();
        for (parameter, values) in self.selected.iter().filter(|(parameter, _)| Some(**parameter) != except) {
            if *parameter == "source" {
                continue;
            }
            let property = Property { path: vec![parameter.to_string()], suffix: None };
            let values = values.iter().map(|value| Literal::String(value.clone())).collect();
            parts.push(Expr::In { property, values, negated: false });
        }
        for (property, min, max) in &self.ranges {
            let property = numeric_property(property).expect("checked when parsed");
            for (bound, op) in [(min, CompareOp::Ge), (max, CompareOp::Le)] {
                if let Some(bound) = bound {
                    parts.push(Expr::Compare { property: property.clone(), op, value: Literal::Double(*bound) });
                }
            }
        }
        match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Expr::And(parts)),
        }
    }

    /// The sources to search: the caller's readable ones, narrowed to the selected (unless `except`).
    fn sources(&self, readable: &Readable, except: Option<&str>) -> Option<Vec<String>> {
        let selected = self.selected.get("source").filter(|_| except != Some("source"));
        match (readable.sources(), selected) {
            (None, None) => None,
            (Some(allowed), None) => Some(allowed.to_vec()),
            (None, Some(selected)) => Some(selected.clone()),
            (Some(allowed), Some(selected)) => {
                Some(selected.iter().filter(|source| allowed.contains(source)).cloned().collect())
            }
        }
    }

    fn search(&self, readable: &Readable, except: Option<&str>, facets: Vec<String>, limit: usize) -> OwnedSearch {
        let (sort, descending) = sort_by(self.effective_sort()).expect("checked when parsed");
        OwnedSearch {
            q: (!self.q.is_empty()).then(|| self.q.clone()),
            filter: self.filter(except),
            sources: self.sources(readable, except),
            sort: Some(sort),
            descending,
            offset: (self.page - 1) * PAGE_SIZE,
            limit,
            facets,
            count: limit > 0,
        }
    }
}

/// A numeric `filter_options` name (`size.int_value`, `artifacts.ttft_p90.double_value`) as a property.
fn numeric_property(name: &str) -> Option<Property> {
    let (path, suffix) = if let Some(path) = name.strip_suffix(".double_value") {
        (path, ValueType::Double)
    } else {
        (name.strip_suffix(".int_value")?, ValueType::Int)
    };
    let path = match path.strip_prefix("artifacts.") {
        Some(name) if !name.is_empty() => vec!["artifacts".to_owned(), name.to_owned()],
        _ if !path.is_empty() => vec![path.to_owned()],
        _ => return None,
    };
    Some(Property { path, suffix: Some(suffix) })
}

/// A `sort` value as the index's sort and direction.
fn sort_by(sort: &str) -> Option<(SortBy, bool)> {
    let value_path = modelcat_index::schema::value_path;
    Some(match sort {
        "relevance" => (SortBy::Relevance, false),
        "name" => (SortBy::Name, false),
        "updated" => (SortBy::UpdateTime, true),
        "created" => (SortBy::CreateTime, true),
        _ => {
            let (direction, name) = sort.split_once(':')?;
            let descending = match direction {
                "low" => false,
                "high" => true,
                _ => return None,
            };
            let property = numeric_property(name)?;
            let group = match (property.path.as_slice(), property.suffix, descending) {
                ([_, name], _, false) => return Some((SortBy::Number(value_path("an", name)), false)),
                ([_, name], _, true) => return Some((SortBy::Number(value_path("ax", name)), true)),
                (_, Some(ValueType::Int), _) => "pi",
                _ => "pd",
            };
            (SortBy::Number(value_path(group, &property.path[0])), descending)
        }
    })
}

struct FacetView {
    parameter: &'static str,
    label: &'static str,
    values: Vec<FacetValue>,
    long: bool,
}

struct FacetValue {
    value: String,
    /// What the user reads: a source's name, any other value as it is.
    label: String,
    count: u64,
    selected: bool,
    id: String,
}

struct RangeView {
    property: String,
    label: String,
    min: String,
    max: String,
    low: String,
    high: String,
}

struct Chip {
    label: String,
    href: String,
}

struct SortOption {
    value: String,
    label: String,
    selected: bool,
}

struct Card {
    href: String,
    /// `source/name`, as the comparison takes it.
    key: String,
    name: String,
    source: String,
    provider: String,
    description: String,
    tasks: String,
    license: String,
    updated: String,
    metrics: Vec<(String, String)>,
}

/// What the results part shows.
struct Results {
    total: usize,
    cards: Vec<Card>,
    facets: Vec<FacetView>,
    ranges: Vec<RangeView>,
    chips: Vec<Chip>,
    clear: String,
    previous: Option<String>,
    next: Option<String>,
    page: usize,
    pages: usize,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage<'a> {
    frame: Frame,
    q: &'a str,
    sorts: Vec<SortOption>,
    results: &'a Results,
    oob: bool,
}

#[derive(Template)]
#[template(path = "results.html")]
struct ResultsPart<'a> {
    results: &'a Results,
    /// Whether to update the result count out of band: it lives outside the swapped part, so screen
    /// readers hear each new count from the same live region.
    oob: bool,
}

/// `GET /ui`.
pub async fn page(
    State(state): State<AppState>,
    readable: Readable,
    frame: Frame,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, UiError> {
    let search = SearchState::parse(&params)?;
    let options = state.catalog.filter_options(readable.sources().map(<[String]>::to_vec)).await?;
    let results = results(&state, &readable, &search, &options).await?;
    let fragment = super::wants_fragment(&headers);
    let part = ResultsPart { results: &results, oob: true };
    let embed = frame.embed;
    let page = SearchPage { frame, q: &search.q, sorts: sorts(&search, &options), results: &results, oob: false };
    let mut response = super::page_or_fragment(fragment, &page, &part);
    // The address bar shows the state without the empty fields a form sends (an embed has none).
    if !embed && let Ok(url) = HeaderValue::from_str(&search.url()) {
        response.headers_mut().insert("hx-push-url", url);
    }
    Ok(response)
}

async fn results(
    state: &AppState,
    readable: &Readable,
    search: &SearchState,
    options: &BTreeMap<String, PropertyOptions>,
) -> Result<Results, UiError> {
    // The page, with the counts of every facet without a selection; then one count per selected facet.
    let open: Vec<String> = FACETS
        .iter()
        .filter(|(parameter, _, _)| !search.selected.contains_key(parameter))
        .map(|(_, facet, _)| facet.to_string())
        .collect();
    let hits = state.catalog.search(search.search(readable, None, open, PAGE_SIZE)).await?;
    let mut counts = hits.facets.clone();
    for (parameter, facet, _) in FACETS.iter().filter(|(parameter, _, _)| search.selected.contains_key(parameter)) {
        let own = state.catalog.search(search.search(readable, Some(parameter), vec![facet.to_string()], 0)).await?;
        counts.extend(own.facets);
    }
    let total = hits.total.unwrap_or(hits.models.len());
    // The enabled model sources the caller may read, by id, with their names.
    let view = state.catalog.view();
    let sources: BTreeMap<String, String> = view
        .sources
        .iter()
        .filter(|source| source.config.enabled)
        .filter(|source| {
            readable.sources().is_none_or(|allowed| allowed.iter().any(|id| id == source.config.id.as_str()))
        })
        .map(|source| (source.config.id.to_string(), source.config.name.clone()))
        .collect();
    let facets = FACETS
        .iter()
        .map(|(parameter, facet, label)| {
            let label_of = |value: &String| match *parameter {
                "source" => sources.get(value).cloned().unwrap_or_else(|| value.clone()),
                _ => value.clone(),
            };
            let selected = search.selected.get(parameter).cloned().unwrap_or_default();
            let mut values: Vec<FacetValue> = counts
                .get(*facet)
                .into_iter()
                .flatten()
                .map(|(value, count)| FacetValue {
                    selected: selected.contains(value),
                    id: value_id(parameter, value),
                    label: label_of(value),
                    value: value.clone(),
                    count: *count,
                })
                .collect();
            // A selected value keeps its place (at zero) even when nothing matches it.
            let unseen_selected = selected.iter().map(|value| (value, true));
            // Zero counts for the values other matches have, so they show disabled rather than vanish.
            let others: Vec<(&String, bool)> = match options.get(*facet) {
                _ if *parameter == "source" => sources.keys().map(|id| (id, false)).collect(),
                Some(PropertyOptions::Strings(all)) => all.iter().map(|(value, _)| (value, false)).collect(),
                _ => Vec::new(),
            };
            for (value, selected) in unseen_selected.chain(others) {
                if !values.iter().any(|shown| &shown.value == value) {
                    values.push(FacetValue {
                        id: value_id(parameter, value),
                        label: label_of(value),
                        value: value.clone(),
                        count: 0,
                        selected,
                    });
                }
            }
            let long = values.len() > LONG_FACET;
            FacetView { parameter, label, values, long }
        })
        .filter(|facet| !facet.values.is_empty())
        .collect();
    let ranges = options
        .iter()
        .filter_map(|(property, option)| match option {
            PropertyOptions::Range { min, max } => Some((property, *min, *max)),
            PropertyOptions::Strings(_) => None,
        })
        .map(|(property, low, high)| {
            let current = search.ranges.iter().find(|(name, _, _)| name == property);
            let bound = |value: Option<f64>| value.map(format::number).unwrap_or_default();
            RangeView {
                property: property.clone(),
                label: label(property),
                min: bound(current.and_then(|(_, min, _)| *min)),
                max: bound(current.and_then(|(_, _, max)| *max)),
                low: format::number(low),
                high: format::number(high),
            }
        })
        .collect();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let at = |page: usize| SearchState { page, ..search.clone() }.url();
    Ok(Results {
        total,
        cards: hits.models.iter().map(card).collect(),
        facets,
        ranges,
        chips: chips(search),
        clear: SearchState { q: search.q.clone(), sort: search.sort.clone(), ..SearchState::default() }.url(),
        previous: (search.page > 1).then(|| at(search.page - 1)),
        next: hits.more.then(|| at(search.page + 1)),
        page: search.page,
        pages,
    })
}

/// A facet value's element id: stable across answers, so htmx keeps the focus on it after a swap.
fn value_id(parameter: &str, value: &str) -> String {
    format!("f-{parameter}-{}", &crate::hex::sha256(value.as_bytes())[..12])
}

/// A readable name for a `filter_options` property (`artifacts.ttft_p90.double_value` → `ttft_p90`).
fn label(property: &str) -> String {
    let name = property.strip_prefix("artifacts.").unwrap_or(property);
    name.trim_end_matches(".double_value").trim_end_matches(".int_value").to_owned()
}

/// The active filters, each with the URL that removes it.
fn chips(search: &SearchState) -> Vec<Chip> {
    let mut chips = Vec::new();
    for (parameter, values) in &search.selected {
        let label = FACETS.iter().find(|(known, _, _)| known == parameter).map_or("", |(_, _, label)| label);
        for value in values {
            let mut without = SearchState { page: 1, ..search.clone() };
            if let Some(values) = without.selected.get_mut(parameter) {
                values.retain(|kept| kept != value);
            }
            without.selected.retain(|_, values| !values.is_empty());
            chips.push(Chip { label: format!("{label}: {value}"), href: without.url() });
        }
    }
    for (property, min, max) in &search.ranges {
        let mut without = SearchState { page: 1, ..search.clone() };
        without.ranges.retain(|(name, _, _)| name != property);
        let text = match (min, max) {
            (Some(min), Some(max)) => format!("{} to {}", format::number(*min), format::number(*max)),
            (Some(min), None) => format!("≥ {}", format::number(*min)),
            (None, Some(max)) => format!("≤ {}", format::number(*max)),
            (None, None) => continue,
        };
        chips.push(Chip { label: format!("{}: {text}", label(property)), href: without.url() });
    }
    chips
}

fn sorts(search: &SearchState, options: &BTreeMap<String, PropertyOptions>) -> Vec<SortOption> {
    // The default (no `sort`) follows the query: relevance for text, name otherwise.
    let current = search.sort.as_str();
    let mut sorts: Vec<(String, String)> =
        [("", "Best match"), ("name", "Name"), ("updated", "Recently updated"), ("created", "Recently added")]
            .iter()
            .map(|(value, label)| (value.to_string(), label.to_string()))
            .collect();
    let metrics = options.iter().filter(|(property, option)| {
        property.starts_with("artifacts.") && matches!(option, PropertyOptions::Range { .. })
    });
    for (property, _) in metrics {
        let name = label(property);
        sorts.push((format!("low:{property}"), format!("Lowest {name}")));
        sorts.push((format!("high:{property}"), format!("Highest {name}")));
    }
    sorts.into_iter().map(|(value, label)| SortOption { selected: value == current, value, label }).collect()
}

/// A result card.
fn card(model: &modelcat_index::StoredModel) -> Card {
    let record = &model.record;
    let mut metrics = Vec::new();
    let best = |name: &str, pick: fn(f64, f64) -> f64| super::model::best_metric(record, name, pick);
    if let Some(accuracy) = best("overall_average", f64::max) {
        metrics.push(("accuracy".to_owned(), format::number(accuracy)));
    }
    if let Some(latency) = best("ttft_p90", f64::min) {
        metrics.push(("best TTFT p90".to_owned(), format!("{} ms", format::number(latency))));
    }
    Card {
        href: super::model::url(&model.source_id, &record.name, None),
        key: format!("{}/{}", model.source_id, record.name),
        name: record.name.clone(),
        source: model.source_id.clone(),
        provider: record.provider.clone().unwrap_or_default(),
        description: record.description.clone().unwrap_or_default(),
        tasks: record.tasks.join(", "),
        license: record.license.clone().unwrap_or_default(),
        updated: record.update_time.map(format::date).unwrap_or_default(),
        metrics,
    }
}

impl Results {
    /// Whether a range filter is set (its section then starts open).
    fn ranges_open(&self) -> bool {
        self.ranges.iter().any(|range| !range.min.is_empty() || !range.max.is_empty())
    }
}

impl FacetValue {
    /// Disabled: picking it would give no results (a selected value stays enabled, to be removed).
    fn disabled(&self) -> bool {
        self.count == 0 && !self.selected
    }
}
