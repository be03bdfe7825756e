//! modelcat-index: the catalog's full-text and faceted search index (tantivy), and the `filterQuery`
//! language it shares with the registry.
//!
//! The contract:
//! - One writer thread owns the only `IndexWriter`. [`CatalogIndex::apply`] sends it a batch of
//!   [`Change`]s and resolves once they are committed **and** the reader reloaded, so an acknowledged change
//!   is visible to the next search. Batches queued meanwhile share one commit; a batch is never split, so a
//!   source swapped in one batch is seen whole-old or whole-new.
//! - Documents are keyed by [`DocKey`] (`"{source_id}:{name}"`) and built from normalized
//!   [`modelcat_sources::ModelRecord`]s ([`document`]); the index knows no HTTP, SQL or source config.
//! - The index lives in a directory with a schema version stamp; one that is missing, unreadable or of
//!   another version is recreated empty and [`CatalogIndex::open`] says so, so the caller reloads it.
//! - Every segment keeps its documents in name order (index sorting), so a first page by name stops after
//!   each segment's first matches, however many documents match.
//! - Every change bumps a generation number, which callers use to key caches.
//! - A [`Change::Checkpoint`] and each [`Change::SourceState`] are stored in the commit payload, so they
//!   are durable exactly when the changes queued before them are.

pub mod document;
pub mod filter;
mod query;
pub mod schema;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use modelcat_sources::ModelRecord;
use serde_json::{Value as Json, json};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard};
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::indexer::UserOperation;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument, Term};
use tokio::sync::{mpsc, oneshot};

pub use document::StoredModel;
use filter::Expr;
use query::Translator;
use schema::{ARTIFACT, Fields, MODEL, SCHEMA_VERSION};

/// How often [`CatalogIndex::compact`] merges again after racing the merge policy.
const COMPACT_ATTEMPTS: u32 = 5;

/// The key of one catalog document: a source id and a model name, which may itself contain `:` or `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocKey {
    pub source_id: String,
    pub name: String,
}

impl fmt::Display for DocKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.source_id, self.name)
    }
}

/// What can go wrong in the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A search the caller got wrong (bad filter, bad order); a client error.
    #[error("{0}")]
    Query(String),
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index: {0}")]
    Io(#[from] std::io::Error),
    /// A commit, merge or stored document that failed inside the index.
    #[error("search index: {0}")]
    Internal(String),
    #[error("search index writer stopped")]
    WriterGone,
}

/// One change to the index.
#[derive(Debug, Clone)]
pub enum Change {
    /// Adds or replaces a model (with its artifacts); `hash` is the record's content hash.
    Upsert { source_id: String, record: Arc<ModelRecord>, hash: u64 },
    /// Removes a model and its artifacts.
    Delete(DocKey),
    /// Removes every model of a source.
    DeleteSource(String),
    /// Records an opaque checkpoint (what the caller has applied, e.g. a change-log position) in this
    /// and every later commit, so it moves together with the documents; [`CatalogIndex::checkpoint`]
    /// reads it back after a restart.
    Checkpoint(String),
    /// Records an opaque state of one source (e.g. the digest of the file its models came from) the
    /// same way, read back by [`CatalogIndex::source_state`]; `None` forgets it, as
    /// [`Change::DeleteSource`] does.
    SourceState { source_id: String, state: Option<String> },
}

/// What every commit's payload holds: the caller's checkpoint and each source's state. A payload
/// without the version marker is a checkpoint written before sources had states.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    sources: BTreeMap<String, String>,
}

impl Payload {
    fn read(stored: Option<String>) -> Payload {
        match stored {
            None => Payload::default(),
            Some(text) => serde_json::from_str(&text).unwrap_or(Payload {
                v: 1,
                checkpoint: Some(text),
                sources: BTreeMap::new(),
            }),
        }
    }

    fn is_empty(&self) -> bool {
        self.checkpoint.is_none() && self.sources.is_empty()
    }
}

/// The order of search results.
#[derive(Debug, Clone, PartialEq)]
pub enum SortBy {
    /// Case-insensitive display name.
    Name,
    CreateTime,
    UpdateTime,
    Id,
    /// BM25 relevance of `q` (name matches first); falls back to name without `q`.
    Relevance,
    /// A numeric value path in the `v` JSON field (e.g. `v.pd.accuracy`, `v.an.ttft_p90`); models without
    /// it come last.
    Number(String),
}

/// One search over model documents.
#[derive(Debug, Clone, Default)]
pub struct Search<'a> {
    pub q: Option<&'a str>,
    pub filter: Option<&'a Expr>,
    /// Only these sources; `None` for all.
    pub sources: Option<&'a [String]>,
    pub sort: Option<SortBy>,
    pub descending: bool,
    pub offset: usize,
    pub limit: usize,
    /// Facets to count over all matches: well-known field names (`license`, `tasks`, …) or `source_id`.
    pub facets: &'a [String],
    /// Whether to count every match ([`Hits::total`]); it visits them all.
    pub count: bool,
}

/// A page of results.
#[derive(Debug, Clone, Default)]
pub struct Hits {
    /// Whether more models match after this page.
    pub more: bool,
    pub models: Vec<StoredModel>,
    /// Facet name → (value, count), most frequent first.
    pub facets: BTreeMap<String, Vec<(String, u64)>>,
    /// How many models match in all, when [`Search::count`] asked.
    pub total: Option<usize>,
}

/// Values a property takes, as `filter_options` reports them.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyOptions {
    /// Fewer than [`MAX_OPTION_VALUES`] distinct strings, each with its count.
    Strings(Vec<(String, u64)>),
    Range {
        min: f64,
        max: f64,
    },
}

/// The default indexing memory. Large documents (readmes) fill small budgets fast; fewer, larger
/// segments mean fewer merges. It is allocated as documents arrive and freed at each commit.
pub const DEFAULT_WRITER_BYTES: usize = 256 << 20;
/// The least indexing memory tantivy accepts (one thread's minimum).
pub const MIN_WRITER_BYTES: usize = 15_000_000;

/// String properties with this many distinct values or more are not listed in filter options.
pub const MAX_OPTION_VALUES: usize = 50;
/// String values longer than this keep a property out of filter options.
pub const MAX_OPTION_VALUE_LEN: usize = 100;
/// Index operations handed to one indexing thread at a time (see `Writer::write`).
const OPERATIONS_PER_GROUP: usize = 2000;
/// How many values a facet reports at most.
const FACET_SIZE: usize = 50;

struct Batch {
    changes: Vec<Change>,
    ack: oneshot::Sender<Result<u64, String>>,
}

enum Message {
    Apply(Batch),
    /// Merge every segment into one, in the background; acknowledged when searches see the result.
    Compact(oneshot::Sender<Result<usize, String>>),
    /// Finish merges, release the writer lock, then acknowledge.
    Close(oneshot::Sender<()>),
}

/// What the writer thread needs: everything but the channel's sending end, so dropping every
/// [`CatalogIndex`] ends the thread.
struct Writer {
    reader: IndexReader,
    fields: Fields,
    generation: Arc<AtomicU64>,
    /// The index directory's map of opened files, when on disk (see [`Writer::forget_deleted_files`]).
    files: Option<MmapDirectory>,
    /// How many files that map holds.
    mapped_files: Arc<AtomicUsize>,
    /// The latest checkpoint and source states, written as the payload of every commit.
    payload: Payload,
}

/// The catalog index: a reader for searches and a channel to the writer thread.
#[derive(Clone)]
pub struct CatalogIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    writer: mpsc::UnboundedSender<Message>,
    generation: Arc<AtomicU64>,
    mapped_files: Arc<AtomicUsize>,
}

/// A point-in-time walk over models (see [`CatalogIndex::scan`]).
pub struct ModelScan {
    index: CatalogIndex,
    searcher: Searcher,
    /// What is left, in reverse order.
    addresses: Vec<tantivy::DocAddress>,
}

impl ModelScan {
    /// How many models are left.
    pub fn remaining(&self) -> usize {
        self.addresses.len()
    }

    /// Up to `count` more models; empty at the end (call from a blocking context).
    pub fn next_chunk(&mut self, count: usize) -> Result<Vec<StoredModel>, IndexError> {
        let take = count.min(self.addresses.len());
        let chunk = self.addresses.split_off(self.addresses.len() - take);
        chunk.into_iter().rev().map(|address| self.index.stored(&self.searcher, address)).collect()
    }
}

/// Where an index lives.
#[derive(Debug, Clone)]
pub enum Storage {
    Directory(PathBuf),
    Memory,
}

impl CatalogIndex {
    /// Opens (or creates) the index; the flag says whether it was created empty and needs a full load.
    /// `writer_bytes` is the indexing memory ([`DEFAULT_WRITER_BYTES`]), split over the writer's threads
    /// (fewer threads when it is small; at least [`MIN_WRITER_BYTES`]).
    pub fn open(storage: &Storage, writer_bytes: usize) -> Result<(CatalogIndex, bool), IndexError> {
        let (schema, fields) = Fields::build();
        let (index, fresh, files) = match storage {
            Storage::Memory => (Index::builder().schema(schema).settings(settings()).create_in_ram()?, true, None),
            Storage::Directory(dir) => {
                let (index, fresh, files) = open_dir(dir, schema)?;
                (index, fresh, Some(files))
            }
        };
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let writer: IndexWriter = index.writer(writer_bytes.max(MIN_WRITER_BYTES))?;
        writer.set_merge_policy(Box::new(merge_policy()));
        let (sender, receiver) = mpsc::unbounded_channel();
        let generation = Arc::new(AtomicU64::new(1));
        let payload = Payload::read(index.load_metas()?.payload);
        let mapped_files = Arc::new(AtomicUsize::new(0));
        let worker = Writer {
            reader: reader.clone(),
            fields,
            generation: generation.clone(),
            files,
            mapped_files: mapped_files.clone(),
            payload,
        };
        std::thread::Builder::new().name("index-writer".into()).spawn(move || worker.run(writer, receiver))?;
        Ok((CatalogIndex { index, reader, fields, writer: sender, generation, mapped_files }, fresh))
    }

    /// The checkpoint of the last commit (see [`Change::Checkpoint`]), if any.
    pub fn checkpoint(&self) -> Result<Option<String>, IndexError> {
        Ok(Payload::read(self.index.load_metas()?.payload).checkpoint)
    }

    /// The state of `source_id` as of the last commit (see [`Change::SourceState`]), if any.
    pub fn source_state(&self, source_id: &str) -> Result<Option<String>, IndexError> {
        Ok(Payload::read(self.index.load_metas()?.payload).sources.remove(source_id))
    }

    /// How many segments readers search (each one adds a fixed cost to every search).
    pub fn segments(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    /// How many index files the directory's map of opened files holds (after the last commit).
    pub fn mapped_files(&self) -> usize {
        self.mapped_files.load(Ordering::Relaxed)
    }

    /// Increases with every committed change.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Applies changes in one commit and resolves when they are searchable; returns the new generation.
    pub async fn apply(&self, changes: Vec<Change>) -> Result<u64, IndexError> {
        self.submit(changes).await
    }

    /// Queues changes now and returns a future of their acknowledgement, so a caller can queue several
    /// batches (which then share commits) before waiting.
    pub fn submit(&self, changes: Vec<Change>) -> impl Future<Output = Result<u64, IndexError>> + Send + 'static {
        let generation = self.generation();
        let queued = if changes.is_empty() {
            None
        } else {
            let (ack, done) = oneshot::channel();
            Some(self.writer.send(Message::Apply(Batch { changes, ack })).map(|()| done))
        };
        async move {
            match queued {
                None => Ok(generation),
                Some(Err(_)) => Err(IndexError::WriterGone),
                Some(Ok(done)) => done.await.map_err(|_| IndexError::WriterGone)?.map_err(IndexError::Internal),
            }
        }
    }

    /// Merges every segment into one (after a bulk load: each segment adds a fixed cost to every search).
    /// Searches go on meanwhile; resolves, with the number of segments merged, once they see the result.
    /// A merge the merge policy started on some of the same segments makes ours fail when it finishes
    /// first: then the segments are merged again, up to [`COMPACT_ATTEMPTS`] times.
    pub async fn compact(&self) -> Result<usize, IndexError> {
        let mut attempt = 1;
        loop {
            let (ack, done) = oneshot::channel();
            self.writer.send(Message::Compact(ack)).map_err(|_| IndexError::WriterGone)?;
            match done.await.map_err(|_| IndexError::WriterGone)? {
                Ok(merged) => return Ok(merged),
                Err(error) if attempt == COMPACT_ATTEMPTS => return Err(IndexError::Internal(error)),
                Err(error) => {
                    tracing::debug!(%error, attempt, "search index compaction raced a merge; merging again");
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Stops the writer after the changes queued before this call: merges finish and the directory lock
    /// is released. Later [`CatalogIndex::apply`] calls fail with [`IndexError::WriterGone`].
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.writer.send(Message::Close(ack)).is_ok() {
            let _ = done.await;
        }
    }

    fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// Runs a search (call from a blocking context: it does CPU work).
    pub fn search(&self, search: &Search<'_>) -> Result<Hits, IndexError> {
        let searcher = self.searcher();
        let translator = Translator { fields: &self.fields, searcher: &searcher };
        let mut tokenizer = self.index.tokenizer_for_field(self.fields.name)?;
        let text = search.q.and_then(|q| translator.text(q, &mut tokenizer));
        let mut filters = Vec::new();
        if let Some(sources) = search.sources {
            filters.push(translator.sources(sources));
        }
        if let Some(expr) = search.filter {
            filters.push(translator.filter(expr)?);
        }
        let query = translator.models(text, filters);
        let order = if search.descending { Order::Desc } else { Order::Asc };
        // One extra hit says whether another page follows (no full count: it would visit every match).
        let top = TopDocs::with_limit(search.limit + 1).and_offset(search.offset);
        let sort = search.sort.clone().unwrap_or(SortBy::Name);
        let mut addresses: Vec<tantivy::DocAddress> = match (&sort, search.q.is_some()) {
            _ if search.limit == 0 => Vec::new(),
            (SortBy::Relevance, true) => collect(&searcher, &query, top.order_by_score())?,
            (SortBy::Name | SortBy::Relevance, _) if !search.descending => {
                first_by_name(&searcher, &query, search.offset, search.limit + 1)?
            }
            (SortBy::Name | SortBy::Relevance, _) => {
                collect(&searcher, &query, top.order_by_string_fast_field("name_sort", order))?
            }
            (SortBy::CreateTime, _) => {
                collect(&searcher, &query, top.order_by_fast_field::<i64>("create_time", order))?
            }
            (SortBy::UpdateTime, _) => {
                collect(&searcher, &query, top.order_by_fast_field::<i64>("update_time", order))?
            }
            (SortBy::Id, _) => collect(&searcher, &query, top.order_by_fast_field::<u64>("id", order))?,
            (SortBy::Number(path), _) => {
                by_number(&searcher, &query, path, search.descending, search.offset, search.limit + 1)?
            }
        };
        let more = addresses.len() > search.limit;
        addresses.truncate(search.limit);
        let models =
            addresses.into_iter().map(|address| self.stored(&searcher, address)).collect::<Result<Vec<_>, _>>()?;
        let facets =
            if search.facets.is_empty() { BTreeMap::new() } else { self.facets(&searcher, &query, search.facets)? };
        let total = if search.count { Some(searcher.search(&query, &tantivy::collector::Count)?) } else { None };
        Ok(Hits { more, models, facets, total })
    }

    /// One model by key.
    pub fn get(&self, key: &DocKey) -> Result<Option<StoredModel>, IndexError> {
        let searcher = self.searcher();
        let query = self.by_key(key);
        match searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?.first() {
            Some((_, address)) => Ok(Some(self.stored(&searcher, *address)?)),
            None => Ok(None),
        }
    }

    /// Several models by key, read from one point-in-time view; absent keys are left out.
    pub fn get_many(&self, keys: &[DocKey]) -> Result<HashMap<DocKey, StoredModel>, IndexError> {
        let searcher = self.searcher();
        let mut found = HashMap::with_capacity(keys.len());
        for key in keys {
            let query = self.by_key(key);
            if let Some((_, address)) = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?.first() {
                found.insert(key.clone(), self.stored(&searcher, *address)?);
            }
        }
        Ok(found)
    }

    /// Every model of the given sources, in one point-in-time view that later commits do not change
    /// (a consistent snapshot); read it in chunks with [`ModelScan::next_chunk`].
    pub fn scan(&self, source_ids: &[String]) -> Result<ModelScan, IndexError> {
        let searcher = self.searcher();
        let sources = source_ids.iter().map(|id| (Occur::Should, self.term(self.fields.source, id))).collect();
        let query = BooleanQuery::new(vec![
            (Occur::Must, self.term(self.fields.kind, MODEL)),
            (Occur::Must, Box::new(BooleanQuery::new(sources))),
        ]);
        let mut addresses: Vec<tantivy::DocAddress> = matches_by_segment(&searcher, &query)?
            .into_iter()
            .flat_map(|(segment, docs)| docs.into_iter().map(move |doc| tantivy::DocAddress::new(segment, doc)))
            .collect();
        addresses.reverse();
        Ok(ModelScan { index: self.clone(), searcher, addresses })
    }

    /// The content hash of every model of a source, by name (what a reload diffs against).
    pub fn source_hashes(&self, source_id: &str) -> Result<HashMap<String, u64>, IndexError> {
        let searcher = self.searcher();
        let query = BooleanQuery::new(vec![
            (Occur::Must, self.term(self.fields.kind, MODEL)),
            (Occur::Must, self.term(self.fields.source, source_id)),
        ]);
        let mut hashes = HashMap::new();
        let prefix = format!("{source_id}:");
        for (segment, docs) in matches_by_segment(&searcher, &query)? {
            let fast = searcher.segment_reader(segment).fast_fields();
            let (Some(keys), hash) = (fast.str("key")?, fast.u64("hash")?) else { continue };
            for doc in docs {
                let key = first_str(&keys, doc)?;
                if let (Some(name), Some(hash)) =
                    (key.as_deref().and_then(|key| key.strip_prefix(&prefix)), hash.first(doc))
                {
                    hashes.insert(name.to_owned(), hash);
                }
            }
        }
        Ok(hashes)
    }

    /// How many models the index holds per source.
    pub fn counts(&self) -> Result<BTreeMap<String, u64>, IndexError> {
        let searcher = self.searcher();
        let query = self.term(self.fields.kind, MODEL);
        let results = aggregate(&searcher, &self.index, &*query, &[Agg::Terms { path: "source", size: 100_000 }])?;
        Ok(buckets(&results[0]).into_iter().collect())
    }

    /// Every filterable property with its values (strings) or range (numbers), under Kubeflow's
    /// `filter_options` names (`license`, `size.int_value`, `artifacts.ttft_p90.double_value`, …).
    /// Two aggregation passes per document kind: one finds the properties, one reads their values.
    /// `sources` limits them to those sources' documents.
    pub fn filter_options(&self, sources: Option<&[String]>) -> Result<BTreeMap<String, PropertyOptions>, IndexError> {
        let searcher = self.searcher();
        let mut options = BTreeMap::new();
        for (kind, prefix) in [(MODEL, ""), (ARTIFACT, "artifacts.")] {
            let mut scope = self.term(self.fields.kind, kind);
            if let Some(sources) = sources {
                let any = sources.iter().map(|id| (Occur::Should, self.term(self.fields.source, id))).collect();
                let both =
                    vec![(Occur::Must, scope), (Occur::Must, Box::new(BooleanQuery::new(any)) as Box<dyn Query>)];
                scope = Box::new(BooleanQuery::new(both));
            }
            let keys = aggregate(&searcher, &self.index, &*scope, &[Agg::Terms { path: "props", size: 10_000 }])?;
            let mut wires = Vec::new();
            let mut paths = Vec::new();
            for (key, _) in buckets(&keys[0]) {
                let Some((group, name)) = key.split_once(':') else { continue };
                let wire = match (group, kind) {
                    ("s", MODEL) if schema::FACETS.contains(&name) => name.to_owned(),
                    ("ps", _) => format!("{name}.string_value"),
                    ("pi", _) => format!("{name}.int_value"),
                    ("pd", _) => format!("{name}.double_value"),
                    _ => continue,
                };
                wires.push((format!("{prefix}{wire}"), matches!(group, "s" | "ps")));
                paths.push(schema::value_path(group, name));
            }
            let requests: Vec<Agg> = wires
                .iter()
                .zip(&paths)
                .map(
                    |((_, string), path)| {
                        if *string { Agg::Terms { path, size: MAX_OPTION_VALUES } } else { Agg::Stats { path } }
                    },
                )
                .collect();
            let results = aggregate(&searcher, &self.index, &*scope, &requests)?;
            for ((wire, string), result) in wires.into_iter().zip(&results) {
                if string {
                    // An empty string is no choice a user can pick: it never appears as an option.
                    let mut values: Vec<_> =
                        buckets(result).into_iter().filter(|(value, _)| !value.is_empty()).collect();
                    let short = values.iter().all(|(value, _)| value.chars().count() <= MAX_OPTION_VALUE_LEN);
                    if !values.is_empty() && values.len() < MAX_OPTION_VALUES && short {
                        values.sort();
                        options.insert(wire, PropertyOptions::Strings(values));
                    }
                } else if let (Some(min), Some(max)) = (result["min"].as_f64(), result["max"].as_f64()) {
                    options.insert(wire, PropertyOptions::Range { min, max });
                }
            }
        }
        Ok(options)
    }

    fn facets(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
        names: &[String],
    ) -> Result<BTreeMap<String, Vec<(String, u64)>>, IndexError> {
        let paths = names
            .iter()
            .map(|name| match name.as_str() {
                "source_id" => Ok("source".to_owned()),
                name if schema::FACETS.contains(&name) => Ok(schema::value_path("s", name)),
                name if schema::PROPERTY_FACETS.contains(&name) => Ok(schema::value_path("ps", name)),
                other => Err(IndexError::Query(format!(
                    "cannot facet on {other:?}: use source_id or one of {}, {}",
                    schema::FACETS.join(", "),
                    schema::PROPERTY_FACETS.join(", ")
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let requests: Vec<Agg> = paths.iter().map(|path| Agg::Terms { path, size: FACET_SIZE }).collect();
        let results = aggregate(searcher, &self.index, query, &requests)?;
        Ok(names.iter().cloned().zip(results.iter().map(buckets)).collect())
    }

    fn stored(&self, searcher: &Searcher, address: tantivy::DocAddress) -> Result<StoredModel, IndexError> {
        let document: TantivyDocument = searcher.doc(address)?;
        let payload = document.get_first(self.fields.payload).and_then(|value| value.as_str()).unwrap_or_default();
        serde_json::from_str(payload).map_err(|error| IndexError::Internal(format!("stored model: {error}")))
    }

    fn by_key(&self, key: &DocKey) -> BooleanQuery {
        BooleanQuery::new(vec![
            (Occur::Must, self.term(self.fields.kind, MODEL)),
            (Occur::Must, self.term(self.fields.key, &key.to_string())),
        ])
    }

    fn term(&self, field: tantivy::schema::Field, text: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(Term::from_field_text(field, text), IndexRecordOption::Basic))
    }
}

impl Writer {
    fn run(mut self, mut writer: IndexWriter, mut receiver: mpsc::UnboundedReceiver<Message>) {
        let mut closed = None;
        while let Some(first) = receiver.blocking_recv() {
            let mut batches = Vec::new();
            for message in std::iter::once(first).chain(std::iter::from_fn(|| receiver.try_recv().ok())) {
                match message {
                    Message::Apply(batch) => batches.push(batch),
                    Message::Compact(ack) => self.compact(&mut writer, ack),
                    Message::Close(ack) => {
                        closed = Some(ack);
                        break;
                    }
                }
            }
            if !batches.is_empty() {
                let result = self.write(&mut writer, &mut batches).map_err(|error| {
                    tracing::error!(%error, "index commit failed");
                    let _ = writer.rollback();
                    error.to_string()
                });
                for batch in batches {
                    let _ = batch.ack.send(result.clone());
                }
            }
            if closed.is_some() {
                break;
            }
        }
        if let Err(error) = writer.wait_merging_threads() {
            tracing::warn!(%error, "index merge threads did not finish cleanly");
        }
        if let Some(ack) = closed {
            let _ = ack.send(());
        }
    }

    /// Starts merging all searchable segments; a helper thread waits for the merge and reloads readers.
    fn compact(&self, writer: &mut IndexWriter, ack: oneshot::Sender<Result<usize, String>>) {
        let segments = match writer.index().searchable_segment_ids() {
            Ok(segments) => segments,
            Err(error) => {
                let _ = ack.send(Err(error.to_string()));
                return;
            }
        };
        if segments.len() < 2 {
            let _ = ack.send(Ok(segments.len()));
            return;
        }
        let merge = writer.merge(&segments);
        let reader = self.reader.clone();
        let count = segments.len();
        let waiter = std::thread::Builder::new().name("index-compact".into()).spawn(move || {
            let merged = merge.wait().and_then(|_| reader.reload()).map(|()| count);
            let _ = ack.send(merged.map_err(|error| error.to_string()));
        });
        if let Err(error) = waiter {
            tracing::warn!(%error, "cannot wait for the index merge");
        }
    }

    /// Indexes the batches' changes and commits them. The changes are taken out of the batches and each
    /// one dropped once its documents are built, so a large load's records are freed as they are indexed
    /// rather than held until the commit.
    fn write(&mut self, writer: &mut IndexWriter, batches: &mut [Batch]) -> Result<u64, IndexError> {
        // Taken only once the commit succeeded: a rolled-back batch must not advance the checkpoint.
        let mut payload = self.payload.clone();
        // Operations go to the indexing threads in groups: a group is indexed by one thread into one
        // segment, so a small commit writes (and syncs) one segment rather than one per thread, while a
        // bulk load still spreads its groups over every thread.
        let mut group = Vec::with_capacity(OPERATIONS_PER_GROUP);
        for change in batches.iter_mut().flat_map(|batch| std::mem::take(&mut batch.changes)) {
            match &change {
                Change::Upsert { source_id, record, hash } => {
                    let key = DocKey { source_id: source_id.clone(), name: record.name.clone() };
                    group.push(UserOperation::Delete(Term::from_field_text(self.fields.key, &key.to_string())));
                    let documents = document::model_documents(&self.fields, source_id, record, *hash);
                    group.extend(documents.into_iter().map(UserOperation::Add));
                }
                Change::Delete(key) => {
                    group.push(UserOperation::Delete(Term::from_field_text(self.fields.key, &key.to_string())));
                }
                Change::DeleteSource(source_id) => {
                    group.push(UserOperation::Delete(Term::from_field_text(self.fields.source, source_id)));
                    payload.sources.remove(source_id);
                }
                Change::Checkpoint(next) => payload.checkpoint = Some(next.clone()),
                Change::SourceState { source_id, state: Some(state) } => {
                    payload.sources.insert(source_id.clone(), state.clone());
                }
                Change::SourceState { source_id, state: None } => {
                    payload.sources.remove(source_id);
                }
            }
            if group.len() >= OPERATIONS_PER_GROUP {
                writer.run(std::mem::replace(&mut group, Vec::with_capacity(OPERATIONS_PER_GROUP)))?;
            }
        }
        if !group.is_empty() {
            writer.run(group)?;
        }
        let mut commit = writer.prepare_commit()?;
        if !payload.is_empty() {
            payload.v = 1;
            commit.set_payload(&serde_json::to_string(&payload).unwrap_or_default());
        }
        commit.commit()?;
        self.payload = payload;
        self.reader.reload()?;
        self.forget_deleted_files();
        Ok(self.generation.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Drops the directory's entries for files no reader has open any more. tantivy's `MmapDirectory`
    /// keeps an entry for every file it ever opened and prunes them only when asked for its cache info;
    /// every commit and merge writes files with new names, so without this the map grew by about 8
    /// entries per commit for as long as the server ran.
    fn forget_deleted_files(&self) {
        if let Some(files) = &self.files {
            self.mapped_files.store(files.get_cache_info().mmapped.len(), Ordering::Relaxed);
        }
    }
}

fn collect<T>(
    searcher: &Searcher,
    query: &dyn Query,
    collector: impl tantivy::collector::Collector<Fruit = Vec<(T, tantivy::DocAddress)>>,
) -> Result<Vec<tantivy::DocAddress>, IndexError> {
    Ok(searcher.search(query, &collector)?.into_iter().map(|(_, address)| address).collect())
}

/// The `limit` documents matching `query` that come first by name, after `offset` of them. Segments
/// keep their documents in name order ([`settings`]), so each one reads only its first `offset + limit`
/// matches, however many there are; those are then merged by name (ties in segment and document order).
fn first_by_name(
    searcher: &Searcher,
    query: &dyn Query,
    offset: usize,
    limit: usize,
) -> Result<Vec<tantivy::DocAddress>, IndexError> {
    let wanted = offset + limit;
    let weight = query.weight(tantivy::query::EnableScoring::disabled_from_searcher(searcher))?;
    let mut firsts: Vec<(String, tantivy::DocAddress)> = Vec::new();
    for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
        let names = segment
            .fast_fields()
            .str("name_sort")?
            .ok_or_else(|| IndexError::Internal("the index has no name_sort column".to_owned()))?;
        let alive = segment.alive_bitset();
        let mut matches = weight.scorer(segment, 1.0)?;
        let mut taken = 0;
        let mut doc = matches.doc();
        while doc != tantivy::TERMINATED && taken < wanted {
            if alive.is_none_or(|alive| alive.is_alive(doc)) {
                let mut name = String::new();
                if let Some(term) = names.term_ords(doc).next() {
                    names.ord_to_str(term, &mut name)?;
                }
                firsts.push((name, tantivy::DocAddress::new(ordinal as u32, doc)));
                taken += 1;
            }
            doc = matches.advance();
        }
    }
    firsts.sort_unstable();
    Ok(firsts.into_iter().skip(offset).take(limit).map(|(_, address)| address).collect())
}

/// The documents matching `query`, grouped by segment, so callers open each segment's columns once.
pub(crate) fn matches_by_segment(
    searcher: &Searcher,
    query: &dyn Query,
) -> Result<BTreeMap<u32, Vec<tantivy::DocId>>, IndexError> {
    let mut segments: BTreeMap<u32, Vec<tantivy::DocId>> = BTreeMap::new();
    for address in searcher.search(query, &DocSetCollector)? {
        segments.entry(address.segment_ord).or_default().push(address.doc_id);
    }
    Ok(segments)
}

/// The first value of a string column for a document.
pub(crate) fn first_str(
    column: &tantivy::columnar::StrColumn,
    doc: tantivy::DocId,
) -> Result<Option<String>, IndexError> {
    let Some(ord) = column.term_ords(doc).next() else { return Ok(None) };
    let mut text = String::new();
    column.ord_to_str(ord, &mut text)?;
    Ok(Some(text))
}

/// A numeric fast column of either type (custom int properties are i64, everything else f64).
enum NumberColumn {
    Double(tantivy::columnar::Column<f64>),
    Int(tantivy::columnar::Column<i64>),
}

/// One page of matches ordered by a numeric JSON path, missing values last (tantivy's fast-field sorts
/// take schema fields, not JSON paths).
fn by_number(
    searcher: &Searcher,
    query: &dyn Query,
    path: &str,
    descending: bool,
    offset: usize,
    limit: usize,
) -> Result<Vec<tantivy::DocAddress>, IndexError> {
    let mut keyed = Vec::new();
    for (segment, docs) in matches_by_segment(searcher, query)? {
        let fast = searcher.segment_reader(segment).fast_fields();
        let column = match fast.column_opt::<f64>(path)? {
            Some(doubles) => Some(NumberColumn::Double(doubles)),
            None => fast.column_opt::<i64>(path)?.map(NumberColumn::Int),
        };
        for doc in docs {
            let value = match &column {
                Some(NumberColumn::Double(column)) => column.first(doc),
                Some(NumberColumn::Int(column)) => column.first(doc).map(|number| number as f64),
                None => None,
            };
            keyed.push((value, tantivy::DocAddress::new(segment, doc)));
        }
    }
    keyed.sort_by(|(a, left), (b, right)| {
        let by_value = match (a, b) {
            (Some(a), Some(b)) if descending => b.total_cmp(a),
            (Some(a), Some(b)) => a.total_cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_value.then(left.cmp(right))
    });
    Ok(keyed.into_iter().skip(offset).take(limit).map(|(_, address)| address).collect())
}

/// One aggregation over a field or JSON value path.
enum Agg<'a> {
    /// The most frequent values with their counts.
    Terms { path: &'a str, size: usize },
    /// Min and max.
    Stats { path: &'a str },
}

/// Runs every aggregation in one pass over `query`'s matches; results in request order.
fn aggregate(searcher: &Searcher, index: &Index, query: &dyn Query, aggs: &[Agg<'_>]) -> Result<Vec<Json>, IndexError> {
    if aggs.is_empty() {
        return Ok(Vec::new());
    }
    let request: serde_json::Map<String, Json> = aggs
        .iter()
        .enumerate()
        .map(|(position, agg)| {
            let body = match agg {
                Agg::Terms { path, size } => json!({"terms": {"field": path, "size": size}}),
                Agg::Stats { path } => json!({"stats": {"field": path}}),
            };
            (format!("a{position}"), body)
        })
        .collect();
    let aggregations: Aggregations = serde_json::from_value(Json::Object(request))
        .map_err(|error| IndexError::Internal(format!("aggregation: {error}")))?;
    let context = AggContextParams::new(AggregationLimitsGuard::default(), index.tokenizers().clone());
    let results = searcher.search(query, &AggregationCollector::from_aggs(aggregations, context))?;
    let mut results =
        serde_json::to_value(results).map_err(|error| IndexError::Internal(format!("aggregation: {error}")))?;
    Ok((0..aggs.len()).map(|position| results[format!("a{position}")].take()).collect())
}

/// The `(value, count)` buckets of a terms aggregation result, most frequent first.
fn buckets(result: &Json) -> Vec<(String, u64)> {
    let buckets = result["buckets"].as_array().map(Vec::as_slice).unwrap_or_default();
    let bucket = |bucket: &Json| {
        let key = match &bucket["key"] {
            Json::String(text) => text.clone(),
            other => other.to_string(),
        };
        Some((key, bucket["doc_count"].as_u64()?))
    };
    buckets.iter().filter_map(bucket).collect()
}

/// Segments below this many documents share the lowest merge level. tantivy's default (10,000) suits
/// bulk loads; a replica following a change log commits a few documents every 50 ms or so, and with the
/// default every merge of those rewrote the whole lower part of the index again (measured: merge threads
/// took a third of the machine's CPU under a steady write stream). Bulk loads are compacted into one
/// segment anyway ([`CatalogIndex::compact`]).
const MIN_MERGE_LAYER_DOCS: u32 = 500;

/// Each segment keeps its documents in name order (artifacts, which have no name, first), so the first
/// page by name reads only each segment's first matches ([`first_by_name`]).
fn settings() -> tantivy::IndexSettings {
    let sort = tantivy::IndexSortByField { field: "name_sort".to_owned(), order: tantivy::Order::Asc };
    tantivy::IndexSettings { sort_by_field: Some(sort), ..tantivy::IndexSettings::default() }
}

fn merge_policy() -> tantivy::merge_policy::LogMergePolicy {
    let mut policy = tantivy::merge_policy::LogMergePolicy::default();
    policy.set_min_layer_size(MIN_MERGE_LAYER_DOCS);
    policy
}

/// Opens an index directory, recreating it when it is missing, unreadable or of another schema version.
/// Also returns the directory, whose map of opened files the writer prunes.
fn open_dir(dir: &Path, schema: tantivy::schema::Schema) -> Result<(Index, bool, MmapDirectory), IndexError> {
    let stamp = dir.join("modelcat-schema-version");
    let current = std::fs::read_to_string(&stamp).ok().and_then(|text| text.trim().parse::<u32>().ok());
    if current == Some(SCHEMA_VERSION) {
        let opened = MmapDirectory::open(dir).map_err(|error| IndexError::Internal(error.to_string()));
        match opened.and_then(|files| Ok((Index::open(files.clone())?, files))) {
            Ok((index, files)) if index.schema() == schema => return Ok((index, false, files)),
            Ok(_) => tracing::warn!(dir = %dir.display(), "search index schema differs; rebuilding"),
            Err(error) => tracing::warn!(dir = %dir.display(), %error, "search index unreadable; rebuilding"),
        }
    } else if dir.exists() {
        tracing::warn!(dir = %dir.display(), found = ?current, expected = SCHEMA_VERSION, "search index of another version; rebuilding");
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let files = MmapDirectory::open(dir).map_err(|error| IndexError::Internal(error.to_string()))?;
    let index = Index::create(files.clone(), schema, settings())?;
    std::fs::write(&stamp, SCHEMA_VERSION.to_string())?;
    Ok((index, true, files))
}

#[cfg(test)]
mod tests;
