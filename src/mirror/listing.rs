//! The in-memory listing behind `GET /api/models`: one compact entry per mirrored repo, pre-sorted by
//! every sort key the Hub offers, published as an immutable snapshot that readers share.
//!
//! A query walks the chosen order from its cursor and keeps entries that pass the filters (substring on
//! the lowercased id, author, ANDed tags, pipeline tag, gating) until the page is full, so common
//! queries touch a few dozen entries. A `search` does not visit entries one by one: each order keeps
//! its lowercased ids in one contiguous text, which `memchr::memmem` scans with SIMD for the substring
//! (about a megabyte for 50,000 repos), and only the matching positions are visited. Cursors are keysets (sort value, id), so pages stay consistent while syncs publish new
//! snapshots. Writers stage changes and publish them together; a publish re-sorts (milliseconds for
//! 50,000 repos), so syncs publish at most about once a second.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use modelcat_sources::hf::parse_hub_time;
use serde_json::Value as Json;

/// The sort keys of `GET /api/models?sort=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SortKey {
    TrendingScore,
    Downloads,
    Likes,
    LastModified,
    CreatedAt,
}

impl SortKey {
    pub const ALL: [SortKey; 5] =
        [SortKey::TrendingScore, SortKey::Downloads, SortKey::Likes, SortKey::LastModified, SortKey::CreatedAt];

    /// Parses the wire names (both the Hub's camelCase and `huggingface_hub`'s snake_case spellings).
    pub fn parse(text: &str) -> Option<SortKey> {
        Some(match text {
            "trendingScore" | "trending_score" | "trending" => SortKey::TrendingScore,
            "downloads" => SortKey::Downloads,
            "likes" => SortKey::Likes,
            "lastModified" | "last_modified" => SortKey::LastModified,
            "createdAt" | "created_at" => SortKey::CreatedAt,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One repo's listing fields.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: Box<str>,
    id_lower: Box<str>,
    author_lower: Box<str>,
    /// The default list item (`_id, id, likes, trendingScore, private, downloads, tags, pipeline_tag,
    /// library_name, createdAt, modelId`), ready to serialize.
    pub item: serde_json::Map<String, Json>,
    tags: Box<[Box<str>]>,
    pipeline_tag: Option<Box<str>>,
    gated: bool,
    keys: [f64; 5],
}

impl Entry {
    /// The entry for a `model_info` document; `None` without an `id`.
    pub fn from_info(info: &Json) -> Option<Entry> {
        let id = info.get("id")?.as_str()?;
        let number = |key: &str| info.get(key).and_then(Json::as_f64).unwrap_or(0.0);
        let time = |key: &str| info.get(key).and_then(Json::as_str).and_then(parse_hub_time).unwrap_or(0) as f64;
        let tags: Vec<Box<str>> = info
            .get("tags")
            .and_then(Json::as_array)
            .map(|tags| tags.iter().filter_map(|tag| tag.as_str().map(Box::from)).collect())
            .unwrap_or_default();
        let mut item = serde_json::Map::new();
        for key in [
            "_id",
            "id",
            "likes",
            "trendingScore",
            "private",
            "downloads",
            "tags",
            "pipeline_tag",
            "library_name",
            "createdAt",
        ] {
            if let Some(value) = info.get(key) {
                item.insert(key.to_owned(), value.clone());
            }
        }
        item.insert("modelId".to_owned(), Json::from(id));
        let author = info.get("author").and_then(Json::as_str).or_else(|| id.split_once('/').map(|(owner, _)| owner));
        Some(Entry {
            id: id.into(),
            id_lower: id.to_lowercase().into(),
            author_lower: author.unwrap_or_default().to_lowercase().into(),
            item,
            tags: tags.into(),
            pipeline_tag: info.get("pipeline_tag").and_then(Json::as_str).map(Box::from),
            gated: info.get("gated").is_some_and(|gated| gated.is_string() || gated.as_bool() == Some(true)),
            keys: [
                number("trendingScore"),
                number("downloads"),
                number("likes"),
                time("lastModified"),
                time("createdAt"),
            ],
        })
    }

    pub fn key(&self, sort: SortKey) -> f64 {
        self.keys[sort.index()]
    }
}

/// A list query, already parsed.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Lowercased substring of the id.
    pub search: Option<String>,
    /// Lowercased owner.
    pub author: Option<String>,
    /// Tags, all required.
    pub tags: Vec<String>,
    pub pipeline_tag: Option<String>,
    pub gated: Option<bool>,
    pub sort: Option<SortKey>,
    pub ascending: bool,
    pub limit: usize,
    /// Resume after this (sort value, id).
    pub after: Option<(f64, String)>,
}

impl Query {
    fn accepts(&self, entry: &Entry) -> bool {
        self.search.as_deref().is_none_or(|search| entry.id_lower.contains(search))
            && self.author.as_deref().is_none_or(|author| *entry.author_lower == *author)
            && self.pipeline_tag.as_deref().is_none_or(|tag| entry.pipeline_tag.as_deref() == Some(tag))
            && self.gated.is_none_or(|gated| entry.gated == gated)
            && self.tags.iter().all(|tag| entry.tags.iter().any(|have| **have == **tag))
    }
}

/// One published state.
#[derive(Debug, Default)]
struct Snapshot {
    entries: Vec<Arc<Entry>>,
    /// Per sort key: positions into `entries`, by (value descending, id ascending).
    orders: [Vec<u32>; 5],
    /// Per sort key: the lowercased ids in that order, for substring search.
    ids: [Haystack; 5],
}

/// Lowercased ids joined by `\n`, and where each starts.
#[derive(Debug, Default)]
struct Haystack {
    text: String,
    starts: Vec<u32>,
}

impl Haystack {
    fn build(entries: &[Arc<Entry>], order: &[u32]) -> Haystack {
        let mut text = String::with_capacity(order.len() * 24);
        let mut starts = Vec::with_capacity(order.len());
        for &position in order {
            starts.push(text.len() as u32);
            text.push_str(&entries[position as usize].id_lower);
            text.push('\n');
        }
        Haystack { text, starts }
    }

    /// The order indexes (in `start..end`) whose id contains `needle`, forward or backward, each once.
    fn matches<'a>(
        &'a self,
        needle: &'a str,
        start: usize,
        end: usize,
        backward: bool,
    ) -> Box<dyn Iterator<Item = usize> + 'a> {
        let byte = |index: usize| self.starts.get(index).map_or(self.text.len(), |&offset| offset as usize);
        let (from, to) = (byte(start), byte(end));
        let window = &self.text.as_bytes()[from..to];
        let index_of = move |offset: usize| self.starts.partition_point(|&start| start as usize <= from + offset) - 1;
        if needle.is_empty() || needle.contains('\n') {
            return Box::new(std::iter::empty());
        }
        let mut last = None;
        let once = move |index: usize| (last.replace(index) != Some(index)).then_some(index);
        if backward {
            Box::new(memchr::memmem::rfind_iter(window, needle.as_bytes()).map(index_of).filter_map(once))
        } else {
            Box::new(memchr::memmem::find_iter(window, needle.as_bytes()).map(index_of).filter_map(once))
        }
    }
}

impl Snapshot {
    fn build(mut entries: Vec<Arc<Entry>>) -> Snapshot {
        entries.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let orders = SortKey::ALL.map(|sort| {
            let mut order: Vec<u32> = (0..entries.len() as u32).collect();
            // Entries are in id order, so a stable sort on the value alone breaks ties by id.
            order.sort_by(|&a, &b| entries[b as usize].key(sort).total_cmp(&entries[a as usize].key(sort)));
            order
        });
        let ids = std::array::from_fn(|index| Haystack::build(&entries, &orders[index]));
        Snapshot { entries, orders, ids }
    }
}

/// The listing; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    published: Arc<RwLock<Arc<Snapshot>>>,
    staged: Arc<Mutex<HashMap<String, Option<Entry>>>>,
    /// How many times staged changes were published, and the listing replaced whole: a rebuild from
    /// the store races a sync's publishes ([`crate::mirror::Mirror::reload_listing`]).
    publishes: Arc<AtomicU64>,
    replaces: Arc<AtomicU64>,
}

impl Listing {
    /// Replaces everything with `entries`.
    pub fn replace(&self, entries: Vec<Entry>) {
        let snapshot = Snapshot::build(entries.into_iter().map(Arc::new).collect());
        *self.published.write().expect("listing lock") = Arc::new(snapshot);
        self.replaces.fetch_add(1, Ordering::AcqRel);
    }

    /// How many times staged changes were published so far.
    pub fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::Acquire)
    }

    /// How many times the listing was replaced whole so far.
    pub fn replaces(&self) -> u64 {
        self.replaces.load(Ordering::Acquire)
    }

    /// Stages an upsert (from a `model_info` document) for the next [`Listing::publish`].
    pub fn stage(&self, entry: Entry) {
        self.staged.lock().expect("listing lock").insert(entry.id.to_string(), Some(entry));
    }

    /// Stages a removal.
    pub fn stage_removal(&self, repo_id: &str) {
        self.staged.lock().expect("listing lock").insert(repo_id.to_owned(), None);
    }

    /// Publishes staged changes; returns whether there were any.
    pub fn publish(&self) -> bool {
        let staged = std::mem::take(&mut *self.staged.lock().expect("listing lock"));
        if staged.is_empty() {
            return false;
        }
        let current = self.snapshot();
        let mut entries: BTreeMap<&str, Arc<Entry>> =
            current.entries.iter().map(|entry| (&*entry.id, entry.clone())).collect();
        for (id, entry) in &staged {
            match entry {
                Some(entry) => entries.insert(id, Arc::new(entry.clone())),
                None => entries.remove(id.as_str()),
            };
        }
        let snapshot = Snapshot::build(entries.into_values().collect());
        *self.published.write().expect("listing lock") = Arc::new(snapshot);
        self.publishes.fetch_add(1, Ordering::AcqRel);
        true
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.published.read().expect("listing lock").clone()
    }

    /// Whether `repo_id` is listed.
    pub fn contains(&self, repo_id: &str) -> bool {
        let snapshot = self.snapshot();
        snapshot.entries.binary_search_by(|entry| (*entry.id).cmp(repo_id)).is_ok()
    }

    pub fn len(&self) -> usize {
        self.snapshot().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs a query: up to `limit` entries and whether more follow.
    pub fn query(&self, query: &Query) -> (Vec<Arc<Entry>>, bool) {
        let snapshot = self.snapshot();
        let sort = query.sort.unwrap_or(SortKey::TrendingScore);
        let order = &snapshot.orders[sort.index()];
        let entry = |position: u32| &snapshot.entries[position as usize];
        // Descending walks `order` forward from the cursor; ascending walks it backward.
        let (start, end) = match &query.after {
            None => (0, order.len()),
            Some((value, id)) => {
                let after = |position: u32, inclusive: bool| {
                    let entry = entry(position);
                    entry.key(sort) > *value
                        || (entry.key(sort) == *value && if inclusive { *entry.id <= **id } else { *entry.id < **id })
                };
                if query.ascending {
                    (0, order.partition_point(|&position| after(position, false)))
                } else {
                    (order.partition_point(|&position| after(position, true)), order.len())
                }
            }
        };
        let indexes: Box<dyn Iterator<Item = usize>> = match &query.search {
            Some(needle) => snapshot.ids[sort.index()].matches(needle, start, end, query.ascending),
            None if query.ascending => Box::new((start..end).rev()),
            None => Box::new(start..end),
        };
        let positions = indexes.map(|index| &order[index]);
        let mut page = Vec::with_capacity(query.limit.min(1000));
        for &position in positions {
            let candidate = entry(position);
            if query.accepts(candidate) {
                if page.len() == query.limit {
                    return (page, true);
                }
                page.push(candidate.clone());
            }
        }
        (page, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listing(count: usize) -> Listing {
        let listing = Listing::default();
        let entries = (0..count)
            .map(|n| {
                let id = format!("{}/model-{n:03}", if n % 2 == 0 { "even" } else { "odd" });
                let tags = if n % 3 == 0 { json!(["bert", "license:mit"]) } else { json!(["gpt2"]) };
                Entry::from_info(&json!({"id": id, "downloads": n % 7, "likes": n, "tags": tags})).unwrap()
            })
            .collect();
        listing.replace(entries);
        listing
    }

    fn walk(listing: &Listing, mut query: Query) -> Vec<String> {
        let mut ids = Vec::new();
        loop {
            let (page, more) = listing.query(&query);
            let sort = query.sort.unwrap_or(SortKey::TrendingScore);
            ids.extend(page.iter().map(|entry| entry.id.to_string()));
            if !more {
                return ids;
            }
            let last = page.last().unwrap();
            query.after = Some((last.key(sort), last.id.to_string()));
        }
    }

    #[test]
    fn pages_cover_everything_once_in_both_directions() {
        let listing = listing(50);
        for ascending in [false, true] {
            let query = Query { sort: Some(SortKey::Downloads), ascending, limit: 7, ..Query::default() };
            let ids = walk(&listing, query);
            let mut unique = ids.clone();
            unique.sort();
            unique.dedup();
            assert_eq!((ids.len(), unique.len()), (50, 50));
            let downloads: Vec<usize> = ids.iter().map(|id| id[id.len() - 3..].parse::<usize>().unwrap() % 7).collect();
            let mut sorted = downloads.clone();
            sorted.sort();
            if !ascending {
                sorted.reverse();
            }
            assert_eq!(downloads, sorted);
        }
    }

    #[test]
    fn filters_combine() {
        let listing = listing(30);
        let query = Query {
            search: Some("model-0".into()),
            author: Some("even".into()),
            tags: vec!["bert".into(), "license:mit".into()],
            limit: 100,
            ..Query::default()
        };
        let ids = walk(&listing, query);
        assert_eq!(ids.len(), 5, "{ids:?}"); // n in 0..30, even, divisible by 3: 0, 6, 12, 18, 24
        assert!(ids.iter().all(|id| id.starts_with("even/")));
    }

    #[test]
    fn search_pages_match_a_scan_in_both_directions() {
        let listing = listing(60);
        let search = |ascending| {
            let query = Query {
                search: Some("l-0".into()),
                sort: Some(SortKey::Likes),
                ascending,
                limit: 4,
                ..Query::default()
            };
            walk(&listing, query)
        };
        let (descending, mut ascending) = (search(false), search(true));
        // Ids containing "l-0": model-000 … model-059, every one of them.
        assert_eq!(descending.len(), 60);
        ascending.reverse();
        assert_eq!(descending, ascending);
        let rare = walk(&listing, Query { search: Some("-05".into()), limit: 3, ..Query::default() });
        assert_eq!(rare.len(), 10, "{rare:?}");
    }

    #[test]
    fn staged_changes_publish_together() {
        let listing = listing(3);
        listing.stage(Entry::from_info(&json!({"id": "new/one"})).unwrap());
        listing.stage_removal("even/model-000");
        assert_eq!(listing.len(), 3);
        assert!(listing.publish());
        assert_eq!(listing.len(), 3);
        let (page, _) = listing.query(&Query { search: Some("new/".into()), limit: 10, ..Query::default() });
        assert_eq!(page.len(), 1);
        assert!(!listing.publish());
    }
}
