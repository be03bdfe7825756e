//! Translates a catalog search (`q`, `filterQuery`, sources) into a tantivy query over model documents.
//!
//! - `q`: every query word must match a model: a whole word of its name, provider, tasks, library,
//!   license, description or readme, or the start of a word of any of these but the readme. Name matches
//!   weigh most, so BM25 ranks them first.
//! - `filterQuery`: Kubeflow semantics on catalog fields and custom properties; `artifacts.<prop>`
//!   conditions hold if some artifact of the model matches, and ANDed ones must hold on the same artifact
//!   (they are run together as one artifact query whose model keys then filter the models). A numeric
//!   literal without a type suffix matches `int_value` or `double_value`; `=` on an array field means
//!   "contains", `IN` "any of". Comparisons with a missing value are false, as in SQL.

use std::collections::BTreeSet;
use std::ops::Bound;

use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, EmptyQuery, ExistsQuery, Occur, Query, RangeQuery, RegexQuery,
    TermQuery, TermSetQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TokenStream;
use tantivy::{Searcher, Term};

use crate::document::MAX_PREFIX;
use crate::filter::{CompareOp, Expr, Literal, Property, ValueType};
use crate::schema::{ARTIFACT, ARTIFACT_STRINGS, Fields, INTS, MODEL, MODEL_ARRAYS, MODEL_STRINGS, json_segment};
use crate::{IndexError, first_str, matches_by_segment};

/// Which documents a condition is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Model,
    Artifact,
}

/// Builds queries against one searcher (artifact sub-queries run while building).
pub struct Translator<'a> {
    pub fields: &'a Fields,
    pub searcher: &'a Searcher,
}

type Boxed = Box<dyn Query>;

impl Translator<'_> {
    /// The `kind` restriction for a target.
    fn kind(&self, target: Target) -> Boxed {
        let kind = if target == Target::Model { MODEL } else { ARTIFACT };
        Box::new(TermQuery::new(Term::from_field_text(self.fields.kind, kind), IndexRecordOption::Basic))
    }

    /// The full-text part: each word of `q` must match somewhere; scores rank name matches first.
    pub fn text(&self, q: &str, tokenizer: &mut tantivy::tokenizer::TextAnalyzer) -> Option<Boxed> {
        let mut words = Vec::new();
        let mut stream = tokenizer.token_stream(q);
        while stream.advance() {
            words.push(stream.token().text.clone());
        }
        if words.is_empty() {
            return None;
        }
        let f = self.fields;
        let clauses = words.into_iter().map(|word| {
            let term = |field| Term::from_field_text(field, &word);
            let mut fields = vec![(f.name, 6.0), (f.meta, 2.0), (f.description, 1.0), (f.readme, 0.5)];
            if word.chars().count() <= MAX_PREFIX {
                fields.extend([(f.name_prefix, 3.0), (f.meta_prefix, 1.0)]);
            }
            let any: Vec<(Occur, Boxed)> = fields
                .into_iter()
                .map(|(field, boost)| {
                    let query: Boxed = Box::new(TermQuery::new(term(field), IndexRecordOption::WithFreqs));
                    (Occur::Should, Box::new(BoostQuery::new(query, boost)) as Boxed)
                })
                .collect();
            (Occur::Must, Box::new(BooleanQuery::new(any)) as Boxed)
        });
        Some(Box::new(BooleanQuery::new(clauses.collect())))
    }

    /// Model documents of the given sources (all when empty).
    pub fn sources(&self, sources: &[String]) -> Boxed {
        let terms = sources.iter().map(|source| Term::from_field_text(self.fields.source, source));
        Box::new(TermSetQuery::new(terms))
    }

    /// The filter, restricted to model documents.
    pub fn filter(&self, expr: &Expr) -> Result<Boxed, IndexError> {
        self.expr(expr, Target::Model)
    }

    /// Model documents matching the text query (scored) and every filter (not scored).
    pub fn models(&self, scoring: Option<Boxed>, filters: Vec<Boxed>) -> Boxed {
        // Only model documents have text fields: with a text query the kind restriction is implied.
        let mut clauses: Vec<(Occur, Boxed)> = Vec::new();
        if scoring.is_none() {
            clauses.push((Occur::Must, self.kind(Target::Model)));
        }
        clauses.extend(filters.into_iter().map(|filter| (Occur::Must, constant(filter))));
        if let Some(scoring) = scoring {
            clauses.push((Occur::Must, scoring));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    fn expr(&self, expr: &Expr, target: Target) -> Result<Boxed, IndexError> {
        match expr {
            Expr::And(parts) => {
                let mut clauses: Vec<(Occur, Boxed)> = Vec::new();
                let (artifact, rest): (Vec<&Expr>, Vec<&Expr>) =
                    parts.iter().partition(|part| target == Target::Model && artifact_leaf(part));
                if !artifact.is_empty() {
                    clauses.push((Occur::Must, self.artifact_models(&artifact)?));
                }
                for part in rest {
                    clauses.push((Occur::Must, self.expr(part, target)?));
                }
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            Expr::Or(parts) => {
                let clauses = parts.iter().map(|part| Ok((Occur::Should, self.expr(part, target)?)));
                Ok(Box::new(BooleanQuery::new(clauses.collect::<Result<_, IndexError>>()?)))
            }
            Expr::Not(inner) => Ok(not(self.expr(inner, target)?)),
            leaf if target == Target::Model && artifact_leaf(leaf) => self.artifact_models(&[leaf]),
            leaf => self.leaf(leaf, target),
        }
    }

    /// Models with at least one artifact matching all of `conditions`.
    fn artifact_models(&self, conditions: &[&Expr]) -> Result<Boxed, IndexError> {
        let mut clauses: Vec<(Occur, Boxed)> = vec![(Occur::Must, self.kind(Target::Artifact))];
        for condition in conditions {
            clauses.push((Occur::Must, self.leaf(condition, Target::Artifact)?));
        }
        let query = BooleanQuery::new(clauses);
        let mut keys = BTreeSet::new();
        for (segment, docs) in matches_by_segment(self.searcher, &query)? {
            let Some(column) = self.searcher.segment_reader(segment).fast_fields().str("key")? else { continue };
            for doc in docs {
                keys.extend(first_str(&column, doc)?);
            }
        }
        let terms = keys.iter().map(|key| Term::from_field_text(self.fields.key, key));
        Ok(Box::new(TermSetQuery::new(terms)))
    }

    fn leaf(&self, expr: &Expr, target: Target) -> Result<Boxed, IndexError> {
        let (property, within_artifacts) = match expr {
            Expr::Compare { property, .. } | Expr::In { property, .. } | Expr::IsNull { property, .. } => {
                strip_artifacts(property)
            }
            _ => unreachable!("leaves are comparisons"),
        };
        debug_assert_eq!(within_artifacts, target == Target::Artifact);
        let name = property.path.join(".");
        if name.is_empty() {
            return Err(IndexError::Query("empty property name".into()));
        }
        let hint = match expr {
            Expr::Compare { value, .. } => Some(value.inferred_type()),
            Expr::In { values, .. } => values.first().map(Literal::inferred_type),
            _ => None,
        };
        let paths =
            resolve(&name, property.suffix, hint, target, matches!(expr, Expr::Compare { op, .. } if op.is_pattern()));
        let per_path = paths.iter().map(|(path, typ)| self.condition(expr, path, *typ, &name));
        let queries = per_path.collect::<Result<Vec<_>, _>>()?;
        Ok(match expr {
            // "IS NULL" holds when no typed path exists; the others when any typed path matches.
            Expr::IsNull { negated: false, .. } => {
                Box::new(BooleanQuery::new(queries.into_iter().map(|query| (Occur::Must, query)).collect()))
            }
            _ => any(queries),
        })
    }

    fn condition(&self, expr: &Expr, path: &str, typ: ValueType, name: &str) -> Result<Boxed, IndexError> {
        let exists = || -> Boxed { Box::new(ExistsQuery::new(format!("v.{path}"), false)) };
        let term = |value: &Literal| json_term(self.fields, path, typ, value);
        Ok(match expr {
            Expr::IsNull { negated: true, .. } => exists(),
            Expr::IsNull { negated: false, .. } => not(exists()),
            Expr::In { values, negated, .. } => {
                let terms = values.iter().filter_map(term).collect::<Vec<_>>();
                // A term set walks the term dictionary with an automaton: worth it for long lists only.
                let set: Boxed = if terms.is_empty() {
                    Box::new(EmptyQuery)
                } else if terms.len() <= FEW_TERMS {
                    any(terms
                        .into_iter()
                        .map(|term| Box::new(TermQuery::new(term, IndexRecordOption::Basic)) as Boxed)
                        .collect())
                } else {
                    Box::new(TermSetQuery::new(terms))
                };
                if *negated { and_not(exists(), set) } else { set }
            }
            Expr::Compare { op, value, .. } => match op {
                CompareOp::Like | CompareOp::ILike | CompareOp::NotLike | CompareOp::NotILike => {
                    let Literal::String(pattern) = value else {
                        return Err(IndexError::Query(format!("LIKE on {name} needs a string pattern")));
                    };
                    if typ != ValueType::String {
                        return Err(IndexError::Query(format!("LIKE needs a string property, not {name}")));
                    }
                    let like = self.like(path, pattern, op.is_case_insensitive())?;
                    if matches!(op, CompareOp::NotLike | CompareOp::NotILike) { and_not(exists(), like) } else { like }
                }
                CompareOp::Eq => match term(value) {
                    Some(term) => Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                    None => Box::new(EmptyQuery),
                },
                CompareOp::Ne => match term(value) {
                    Some(term) => and_not(exists(), Box::new(TermQuery::new(term, IndexRecordOption::Basic))),
                    None => exists(),
                },
                CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
                    self.range(path, typ, *op, value, name)?
                }
            },
            _ => unreachable!("leaves are comparisons"),
        })
    }

    fn range(
        &self,
        path: &str,
        typ: ValueType,
        op: CompareOp,
        value: &Literal,
        name: &str,
    ) -> Result<Boxed, IndexError> {
        let number = match value {
            Literal::Int(number) => *number as f64,
            Literal::Double(number) => *number,
            _ => return Err(IndexError::Query(format!("{} on {name} needs a number", op.sql()))),
        };
        let bound = |term: Term, inclusive: bool| if inclusive { Bound::Included(term) } else { Bound::Excluded(term) };
        let (lower, upper) = match typ {
            ValueType::Double => {
                let term = json_term(self.fields, path, typ, &Literal::Double(number)).expect("a double term");
                match op {
                    CompareOp::Gt | CompareOp::Ge => (bound(term, op == CompareOp::Ge), Bound::Unbounded),
                    _ => (Bound::Unbounded, bound(term, op == CompareOp::Le)),
                }
            }
            ValueType::Int => {
                // Compare integers with a possibly fractional bound exactly.
                let (lower, upper) = match op {
                    CompareOp::Gt => (Some(number.floor() as i64 + 1), None),
                    CompareOp::Ge => (Some(number.ceil() as i64), None),
                    CompareOp::Lt => (None, Some(number.ceil() as i64 - 1)),
                    _ => (None, Some(number.floor() as i64)),
                };
                let term = |n: i64| json_term(self.fields, path, typ, &Literal::Int(n)).expect("an int term");
                (
                    lower.map_or(Bound::Unbounded, |n| Bound::Included(term(n))),
                    upper.map_or(Bound::Unbounded, |n| Bound::Included(term(n))),
                )
            }
            _ => return Err(IndexError::Query(format!("{} needs a numeric property, not {name}", op.sql()))),
        };
        Ok(Box::new(RangeQuery::new(lower, upper)))
    }

    /// SQL `LIKE` as a regular expression over the exact values stored at `path`.
    fn like(&self, path: &str, pattern: &str, case_insensitive: bool) -> Result<Boxed, IndexError> {
        let mut prefix = Term::from_field_json_path(self.fields.values, path, false);
        prefix.append_type_and_str("");
        let prefix = String::from_utf8_lossy(prefix.serialized_value_bytes()).into_owned();
        let mut regex = regex_escape(&prefix);
        if case_insensitive {
            regex.push_str("(?i:");
        }
        for c in pattern.chars() {
            match c {
                '%' => regex.push_str(".*"),
                '_' => regex.push('.'),
                c => regex.push_str(&regex_escape(&c.to_string())),
            }
        }
        if case_insensitive {
            regex.push(')');
        }
        let query = RegexQuery::from_pattern(&regex, self.fields.values)
            .map_err(|error| IndexError::Query(format!("invalid LIKE pattern {pattern:?}: {error}")))?;
        Ok(Box::new(query))
    }
}

fn constant(query: Boxed) -> Boxed {
    Box::new(ConstScoreQuery::new(query, 0.0))
}

/// Up to this many values, `IN` is a disjunction of term queries rather than a term set.
const FEW_TERMS: usize = 16;

fn any(mut queries: Vec<Boxed>) -> Boxed {
    if queries.len() == 1 {
        return queries.pop().expect("one query");
    }
    Box::new(BooleanQuery::new(queries.into_iter().map(|query| (Occur::Should, query)).collect()))
}

fn not(query: Boxed) -> Boxed {
    Box::new(BooleanQuery::new(vec![(Occur::Must, Box::new(AllQuery) as Boxed), (Occur::MustNot, query)]))
}

fn and_not(positive: Boxed, negative: Boxed) -> Boxed {
    Box::new(BooleanQuery::new(vec![(Occur::Must, positive), (Occur::MustNot, negative)]))
}

fn artifact_leaf(expr: &Expr) -> bool {
    match expr {
        Expr::Compare { property, .. } | Expr::In { property, .. } | Expr::IsNull { property, .. } => {
            strip_artifacts(property).1
        }
        _ => false,
    }
}

/// `artifacts.x` → (`x`, true); anything else unchanged.
fn strip_artifacts(property: &Property) -> (Property, bool) {
    match property.path.split_first() {
        Some((head, rest)) if head == "artifacts" && !rest.is_empty() => {
            (Property { path: rest.to_vec(), suffix: property.suffix }, true)
        }
        _ => (property.clone(), false),
    }
}

/// The typed JSON paths (without the `v.` prefix) a property name may live at.
fn resolve(
    name: &str,
    suffix: Option<ValueType>,
    hint: Option<ValueType>,
    target: Target,
    pattern: bool,
) -> Vec<(String, ValueType)> {
    let strings = if target == Target::Model { MODEL_STRINGS } else { ARTIFACT_STRINGS };
    if suffix.is_none() {
        if strings.contains(&name) {
            return vec![(format!("s.{}", json_segment(name)), ValueType::String)];
        }
        if target == Target::Model && MODEL_ARRAYS.contains(&name) {
            // LIKE on an array field matches its JSON text, as upstream's SQL does.
            let group = if pattern { "j" } else { "s" };
            return vec![(format!("{group}.{name}"), ValueType::String)];
        }
        if INTS.contains(&name) {
            return vec![(format!("i.{name}"), ValueType::Int)];
        }
    }
    let custom = |typ: ValueType| {
        let group = match typ {
            ValueType::String => "ps",
            ValueType::Int => "pi",
            ValueType::Double => "pd",
            ValueType::Bool => "pb",
        };
        (format!("{group}.{}", json_segment(name)), typ)
    };
    match (suffix, hint) {
        (Some(typ), _) => vec![custom(typ)],
        (None, Some(ValueType::Int | ValueType::Double)) => vec![custom(ValueType::Int), custom(ValueType::Double)],
        (None, Some(typ)) => vec![custom(typ)],
        (None, None) => [ValueType::String, ValueType::Int, ValueType::Double, ValueType::Bool].map(custom).to_vec(),
    }
}

/// The exact term of a literal at a typed path; `None` when the literal cannot equal a value of that type.
fn json_term(fields: &Fields, path: &str, typ: ValueType, value: &Literal) -> Option<Term> {
    let mut term = Term::from_field_json_path(fields.values, path, false);
    match (typ, value) {
        (ValueType::String, Literal::String(text)) => term.append_type_and_str(text),
        (ValueType::String, other) => term.append_type_and_str(&other.to_string()),
        (ValueType::Int, Literal::Int(number)) => term.append_type_and_fast_value(*number),
        (ValueType::Int, Literal::Double(number)) if number.fract() == 0.0 => {
            term.append_type_and_fast_value(*number as i64)
        }
        (ValueType::Double, Literal::Int(number)) => term.append_type_and_fast_value(*number as f64),
        (ValueType::Double, Literal::Double(number)) => term.append_type_and_fast_value(*number),
        (ValueType::Bool, Literal::Bool(flag)) => term.append_type_and_fast_value(*flag),
        _ => return None,
    }
    Some(term)
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == ' ' {
            out.push(c);
        } else if c.is_ascii() && !c.is_ascii_control() {
            out.push('\\');
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:x}}}", c as u32));
        }
    }
    out
}
