//! A model's artifacts, filtered and ordered in memory (a model has tens of them, stored with it).
//!
//! `filterQuery` follows the catalog semantics: well-known fields (`name`, `uri`, `artifactType`,
//! `metricsType`, `externalId`, `description`, `id`, `createTimeSinceEpoch`, `lastUpdateTimeSinceEpoch`),
//! else custom properties, typed by suffix or by the literal (a number matches int or double values).
//! `orderBy` is `ID`, `NAME`, `CREATE_TIME`, `LAST_UPDATE_TIME` or `<prop>.<double_value|int_value|
//! string_value>`: artifacts having the property come first, by value, then the rest by id. Another suffix
//! is an error; a name without one falls back to `ID`, as upstream.

use std::cmp::Ordering;

use modelcat_index::document::artifact_id;
use modelcat_sources::{ArtifactKind, ArtifactRecord, MetadataValue};

use crate::filter::{CompareOp, Expr, Literal, Property, ValueType};

/// An artifact with its stable id.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub id: u64,
    pub record: ArtifactRecord,
}

/// A model's artifacts with their ids, by position.
pub fn with_ids(key: &str, artifacts: &[ArtifactRecord]) -> Vec<Artifact> {
    artifacts
        .iter()
        .enumerate()
        .map(|(position, record)| Artifact { id: artifact_id(key, position), record: record.clone() })
        .collect()
}

/// The order of an artifact list.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactOrder {
    Id,
    Name,
    CreateTime,
    UpdateTime,
    Property(String, ValueType),
}

impl ArtifactOrder {
    /// Parses `orderBy`; an unknown name or a property without a type suffix falls back to ID, as upstream.
    pub fn parse(text: Option<&str>) -> Result<ArtifactOrder, String> {
        Ok(match text.unwrap_or("ID") {
            "ID" => ArtifactOrder::Id,
            "NAME" => ArtifactOrder::Name,
            "CREATE_TIME" => ArtifactOrder::CreateTime,
            "LAST_UPDATE_TIME" => ArtifactOrder::UpdateTime,
            other => match other.rsplit_once('.') {
                Some((name, suffix)) => {
                    let typ = match suffix {
                        "double_value" => ValueType::Double,
                        "int_value" => ValueType::Int,
                        "string_value" => ValueType::String,
                        _ => {
                            return Err(format!(
                                "invalid orderBy {other:?}: use ID, NAME, CREATE_TIME, LAST_UPDATE_TIME or \
                                 <property>.<double_value|int_value|string_value>"
                            ));
                        }
                    };
                    if name.is_empty() {
                        return Err(format!("invalid orderBy {other:?}: the property name is empty"));
                    }
                    ArtifactOrder::Property(name.to_owned(), typ)
                }
                None => ArtifactOrder::Id,
            },
        })
    }
}

/// Sorts artifacts in place.
pub fn sort(artifacts: &mut [Artifact], order: &ArtifactOrder, descending: bool) {
    let direct = |ordering: Ordering| if descending { ordering.reverse() } else { ordering };
    artifacts.sort_by(|a, b| {
        let (left, right) = (&a.record.common, &b.record.common);
        let by = match order {
            ArtifactOrder::Id => direct(a.id.cmp(&b.id)),
            ArtifactOrder::Name => direct(left.name.cmp(&right.name)),
            ArtifactOrder::CreateTime => direct(left.create_time.cmp(&right.create_time)),
            ArtifactOrder::UpdateTime => direct(left.update_time.cmp(&right.update_time)),
            ArtifactOrder::Property(name, typ) => {
                match (typed(left.properties.get(name), *typ), typed(right.properties.get(name), *typ)) {
                    (Some(x), Some(y)) => direct(x.partial_cmp(&y).unwrap_or(Ordering::Equal)),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                }
            }
        };
        by.then(a.id.cmp(&b.id))
    });
}

/// A comparable property value.
#[derive(Debug, PartialEq, PartialOrd)]
enum Comparable<'a> {
    Number(f64),
    Text(&'a str),
    Flag(bool),
}

fn typed(value: Option<&MetadataValue>, typ: ValueType) -> Option<Comparable<'_>> {
    match (value?, typ) {
        (MetadataValue::Double(number), ValueType::Double) => Some(Comparable::Number(*number)),
        (MetadataValue::Int(number), ValueType::Int) => Some(Comparable::Number(*number as f64)),
        (MetadataValue::String(text), ValueType::String) => Some(Comparable::Text(text)),
        (MetadataValue::Bool(flag), ValueType::Bool) => Some(Comparable::Flag(*flag)),
        _ => None,
    }
}

/// Whether an artifact matches a filter.
pub fn matches(artifact: &Artifact, expr: &Expr) -> bool {
    match expr {
        Expr::And(parts) => parts.iter().all(|part| matches(artifact, part)),
        Expr::Or(parts) => parts.iter().any(|part| matches(artifact, part)),
        Expr::Not(inner) => !matches(artifact, inner),
        Expr::IsNull { property, negated } => value_of(artifact, property, None).is_some() == *negated,
        Expr::In { property, values, negated } => {
            let value = value_of(artifact, property, values.first());
            value.is_some_and(|value| values.iter().any(|literal| compare(&value, CompareOp::Eq, literal)) != *negated)
        }
        Expr::Compare { property, op, value } => {
            value_of(artifact, property, Some(value)).is_some_and(|found| compare(&found, *op, value))
        }
    }
}

fn value_of<'a>(artifact: &'a Artifact, property: &Property, literal: Option<&Literal>) -> Option<Comparable<'a>> {
    let name = property.path.join(".");
    let common = &artifact.record.common;
    if property.suffix.is_none() {
        let text = |value: &'a Option<String>| value.as_deref().map(Comparable::Text);
        let known = match (name.as_str(), &artifact.record.kind) {
            ("name", _) => Some(text(&common.name)),
            ("description", _) => Some(text(&common.description)),
            ("externalId", _) => Some(text(&common.external_id)),
            ("uri", ArtifactKind::Model { uri }) => Some(Some(Comparable::Text(uri))),
            ("uri", _) => Some(None),
            ("artifactType", kind) => Some(Some(Comparable::Text(kind.wire_type()))),
            ("metricsType", ArtifactKind::Metrics { metrics_type }) => Some(Some(Comparable::Text(metrics_type))),
            ("metricsType", _) => Some(None),
            ("id", _) => Some(Some(Comparable::Number(artifact.id as f64))),
            ("createTimeSinceEpoch", _) => Some(common.create_time.map(|time| Comparable::Number(time as f64))),
            ("lastUpdateTimeSinceEpoch", _) => Some(common.update_time.map(|time| Comparable::Number(time as f64))),
            _ => None,
        };
        if let Some(known) = known {
            return known;
        }
    }
    let value = common.properties.get(&name)?;
    let wanted = property.suffix.or(literal.map(Literal::inferred_type));
    match (value, wanted) {
        (_, None) => typed(Some(value), kind_of(value)),
        (MetadataValue::Int(_) | MetadataValue::Double(_), Some(ValueType::Int | ValueType::Double))
            if property.suffix.is_none() =>
        {
            typed(Some(value), kind_of(value))
        }
        (_, Some(typ)) => typed(Some(value), typ),
    }
}

fn kind_of(value: &MetadataValue) -> ValueType {
    match value {
        MetadataValue::String(_) => ValueType::String,
        MetadataValue::Int(_) => ValueType::Int,
        MetadataValue::Double(_) => ValueType::Double,
        MetadataValue::Bool(_) => ValueType::Bool,
    }
}

fn compare(found: &Comparable<'_>, op: CompareOp, literal: &Literal) -> bool {
    let wanted = match literal {
        Literal::String(text) => Comparable::Text(text),
        Literal::Int(number) => Comparable::Number(*number as f64),
        Literal::Double(number) => Comparable::Number(*number),
        Literal::Bool(flag) => Comparable::Flag(*flag),
    };
    if op.is_pattern() {
        let (Comparable::Text(text), Comparable::Text(pattern)) = (found, &wanted) else { return false };
        let hit = if op.is_case_insensitive() {
            like(&text.to_lowercase(), &pattern.to_lowercase())
        } else {
            like(text, pattern)
        };
        return hit != matches!(op, CompareOp::NotLike | CompareOp::NotILike);
    }
    let Some(ordering) = found.partial_cmp(&wanted) else { return false };
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        _ => false,
    }
}

/// SQL `LIKE`: `%` is any run of characters, `_` one character.
pub fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    // reachable[i]: the pattern prefix consumed so far can end at text position i.
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for symbol in pattern {
        let mut next = vec![false; text.len() + 1];
        for position in 0..=text.len() {
            if !reachable[position] {
                continue;
            }
            match symbol {
                '%' => next[position..].iter_mut().for_each(|slot| *slot = true),
                '_' if position < text.len() => next[position + 1] = true,
                c if position < text.len() && text[position] == c => next[position + 1] = true,
                _ => {}
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use modelcat_sources::ArtifactCommon;

    use super::*;

    fn artifact(id: u64, hardware: Option<&str>, latency: Option<f64>) -> Artifact {
        let mut properties = BTreeMap::new();
        if let Some(hardware) = hardware {
            properties.insert("hardware_type".to_owned(), MetadataValue::String(hardware.into()));
        }
        if let Some(latency) = latency {
            properties.insert("ttft_p90".to_owned(), MetadataValue::Double(latency));
        }
        let kind = ArtifactKind::Metrics { metrics_type: "performance-metrics".into() };
        Artifact {
            id,
            record: ArtifactRecord { kind, common: ArtifactCommon { properties, ..ArtifactCommon::default() } },
        }
    }

    #[test]
    fn like_follows_sql() {
        assert!(like("granite-8b", "gran%"));
        assert!(like("granite-8b", "%8_"));
        assert!(!like("granite-8b", "%8"));
        assert!(like("", "%"));
    }

    #[test]
    fn filters_and_orders() {
        let mut artifacts =
            vec![artifact(3, Some("H100"), Some(20.0)), artifact(1, None, None), artifact(2, Some("A100"), Some(10.0))];
        let filter = crate::filter::parse("hardware_type = 'H100' OR ttft_p90 < 15").unwrap().unwrap();
        let hits: Vec<u64> = artifacts.iter().filter(|a| matches(a, &filter)).map(|a| a.id).collect();
        assert_eq!(hits, vec![3, 2]);
        let not_null =
            crate::filter::parse("metricsType = 'performance-metrics' AND ttft_p90 IS NOT NULL").unwrap().unwrap();
        assert_eq!(artifacts.iter().filter(|a| matches(a, &not_null)).count(), 2);
        let order = ArtifactOrder::parse(Some("ttft_p90.double_value")).unwrap();
        sort(&mut artifacts, &order, true);
        assert_eq!(artifacts.iter().map(|a| a.id).collect::<Vec<_>>(), vec![3, 2, 1], "missing values last");
        assert_eq!(ArtifactOrder::parse(Some("ttft_p90")).unwrap(), ArtifactOrder::Id);
        assert!(ArtifactOrder::parse(Some(".double_value")).is_err());
        assert!(ArtifactOrder::parse(Some("x.float_value")).is_err());
    }
}
