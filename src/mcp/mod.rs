//! The MCP server catalog: every enabled MCP source's servers in one immutable, in-memory snapshot
//! ([`McpServers`]) that the reloader builds and publishes whole, so a request sees each source
//! whole-old or whole-new.
//!
//! The contract:
//! - A server's id is the stable id of `mcp:{source}:{name}`: the same across restarts and replicas, and
//!   never equal to a model's.
//! - [`McpServers::search`] is a scan, ordered by the requested key with the id breaking ties.
//!   `q` matches a case-insensitive substring of the name, description or provider (upstream's
//!   `LIKE '%q%'`); `name` is an SQL `LIKE` pattern on the name; `filterQuery` is the shared filter language,
//!   evaluated by [`filter`]. Servers are few (upstream catalogs hold tens to thousands), and a scan of
//!   10,000 stays well inside a millisecond, with no index to keep in step.
//! - [`McpServers::filter_options`] is computed once per snapshot; [`options`] computes them for any
//!   subset (a token restricted to some sources).

pub mod filter;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use modelcat_index::{MAX_OPTION_VALUE_LEN, MAX_OPTION_VALUES, PropertyOptions};
use modelcat_sources::MetadataValue;
use modelcat_sources::mcp::McpServer;

use crate::filter::Expr;
pub use filter::FilterError;

/// One server in the catalog.
#[derive(Debug)]
pub struct Entry {
    pub id: u64,
    pub source_id: String,
    pub server: Arc<McpServer>,
    pub create_time: i64,
    pub update_time: i64,
    /// Name, description and provider, lowercased, for `q`.
    text: String,
    /// The lowercased name, the `NAME` order.
    sort_name: String,
}

impl Entry {
    pub fn new(source_id: &str, server: Arc<McpServer>, create_time: i64, update_time: i64) -> Entry {
        let id = modelcat_index::document::stable_id(&format!("mcp:{source_id}:{}", server.name));
        let fields = [Some(&server.name), server.description.as_ref(), server.provider.as_ref()];
        let text = fields.into_iter().flatten().map(|field| field.to_lowercase()).collect::<Vec<_>>().join("\n");
        let sort_name = server.name.to_lowercase();
        Entry { id, source_id: source_id.to_owned(), server, create_time, update_time, text, sort_name }
    }

    /// Whether `q` (already lowercased) occurs in the name, description or provider.
    fn matches_text(&self, q: &str) -> bool {
        self.text.contains(q)
    }
}

/// The order of a server list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    Name,
    Id,
    CreateTime,
    UpdateTime,
}

impl Order {
    /// Parses Kubeflow's `orderBy`; an empty value is the default.
    pub fn parse(text: &str) -> Result<Order, String> {
        Ok(match text {
            "" | "NAME" => Order::Name,
            "ID" => Order::Id,
            "CREATE_TIME" => Order::CreateTime,
            "LAST_UPDATE_TIME" => Order::UpdateTime,
            other => return Err(format!("invalid orderBy {other:?}: use NAME, ID, CREATE_TIME or LAST_UPDATE_TIME")),
        })
    }
}

/// A server search.
#[derive(Debug, Default)]
pub struct Query<'a> {
    /// Lowercased by [`McpServers::search`].
    pub q: Option<&'a str>,
    pub name: Option<&'a str>,
    /// `None`: every source.
    pub sources: Option<&'a [String]>,
    pub filter: Option<&'a Expr>,
    pub order: Order,
    pub descending: bool,
    pub offset: usize,
    pub limit: usize,
}

/// A page of servers and whether more follow.
pub struct Page<'a> {
    pub servers: Vec<&'a Entry>,
    pub more: bool,
    /// How many servers matched in all.
    pub total: usize,
}

/// Every server of every enabled MCP source, by name.
#[derive(Debug, Default)]
pub struct McpServers {
    entries: Vec<Entry>,
    by_id: HashMap<u64, usize>,
    options: OnceLock<BTreeMap<String, PropertyOptions>>,
}

impl McpServers {
    pub fn new(mut entries: Vec<Entry>) -> McpServers {
        entries.sort_by(|a, b| a.sort_name.cmp(&b.sort_name).then(a.id.cmp(&b.id)));
        let by_id = entries.iter().enumerate().map(|(position, entry)| (entry.id, position)).collect();
        McpServers { entries, by_id, options: OnceLock::new() }
    }

    /// The server with this id (a decimal string, as the API writes it).
    pub fn get(&self, id: &str) -> Option<&Entry> {
        let id: u64 = id.parse().ok()?;
        self.by_id.get(&id).map(|position| &self.entries[*position])
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// One page of the servers matching `query`.
    pub fn search(&self, query: &Query<'_>) -> Result<Page<'_>, FilterError> {
        let q = query.q.map(str::to_lowercase);
        let name = query.name.map(|pattern| filter::like_matcher(pattern, false));
        let mut matched = Vec::new();
        for entry in &self.entries {
            if query.sources.is_some_and(|sources| !sources.contains(&entry.source_id))
                || q.as_deref().is_some_and(|q| !entry.matches_text(q))
                || name.as_ref().is_some_and(|name| !name.is_match(&entry.server.name))
            {
                continue;
            }
            if let Some(expr) = query.filter
                && !filter::matches(expr, entry)?
            {
                continue;
            }
            matched.push(entry);
        }
        // Entries are in name order already.
        match query.order {
            Order::Name => {}
            Order::Id => matched.sort_by_key(|entry| entry.id),
            Order::CreateTime => matched.sort_by_key(|entry| (entry.create_time, entry.id)),
            Order::UpdateTime => matched.sort_by_key(|entry| (entry.update_time, entry.id)),
        }
        if query.descending {
            matched.reverse();
        }
        let total = matched.len();
        let servers: Vec<&Entry> = matched.into_iter().skip(query.offset).take(query.limit).collect();
        let more = query.offset + servers.len() < total;
        Ok(Page { servers, more, total })
    }

    /// The filterable properties of every server ([`options`]), computed once per snapshot.
    pub fn filter_options(&self) -> &BTreeMap<String, PropertyOptions> {
        self.options.get_or_init(|| options(&self.entries))
    }
}

/// The filterable properties of `entries` with their values (strings, with counts) or ranges (numbers):
/// the well-known choice fields and every custom property, within the model catalog's option limits.
pub fn options<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> BTreeMap<String, PropertyOptions> {
    let mut strings: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut ranges: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for entry in entries {
        let server = &entry.server;
        let mut add = |field: String, value: &str| {
            if !value.is_empty() {
                *strings.entry(field).or_default().entry(value.to_owned()).or_default() += 1;
            }
        };
        let fields =
            [("provider", &server.provider), ("license", &server.license), ("deploymentMode", &server.deployment_mode)];
        for (field, value) in fields {
            if let Some(value) = value {
                add(field.to_owned(), value);
            }
        }
        for tag in &server.tags {
            add("tags".to_owned(), tag);
        }
        for transport in &server.transports {
            add("transports".to_owned(), transport);
        }
        for (name, value) in &server.custom_properties {
            let (field, number) = match value {
                MetadataValue::String(text) => {
                    add(format!("{name}.string_value"), text);
                    continue;
                }
                MetadataValue::Int(number) => (format!("{name}.int_value"), *number as f64),
                MetadataValue::Double(number) => (format!("{name}.double_value"), *number),
                MetadataValue::Bool(_) => continue,
            };
            let range = ranges.entry(field).or_insert((number, number));
            *range = (range.0.min(number), range.1.max(number));
        }
    }
    let choices = strings.into_iter().filter(|(_, values)| {
        values.len() < MAX_OPTION_VALUES && values.keys().all(|value| value.chars().count() <= MAX_OPTION_VALUE_LEN)
    });
    let mut options: BTreeMap<String, PropertyOptions> =
        choices.map(|(field, values)| (field, PropertyOptions::Strings(values.into_iter().collect()))).collect();
    options.extend(ranges.into_iter().map(|(field, (min, max))| (field, PropertyOptions::Range { min, max })));
    options
}

#[cfg(test)]
mod tests;
