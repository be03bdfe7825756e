//! Translates a parsed `filterQuery` into a SQL condition over one entity table (alias `t`).
//!
//! Well-known names (`id`, `name`, `externalId`, times, `artifactType` and every field of the kind) compare
//! their column; any other name, or a name with a type suffix, is a custom property matched through the
//! `custom_property` table with a correlated `EXISTS`. Without a suffix a custom property's type
//! comes from the literal, as upstream: `'x'` → string, `1` → int, `1.5` → double, `true` → bool.
//! Negations (`NOT`, `NOT IN`, `NOT LIKE`) match every row where the positive predicate is not true, rows
//! with a missing value included. Array fields (`tasks`, `language`) match with `=` when they contain the
//! value, and with `LIKE` on their JSON text.

use crate::filter::{CompareOp, Expr, Literal, Property, ValueType};

use super::RegistryError;
use super::schema::{ARTIFACT_KINDS, FieldType, Kind};
use crate::store::sql::{Sql, Value};

/// How a filter property is stored.
enum Target {
    Column { column: &'static str, ty: ColumnType },
    Custom { name: String, value_type: Option<ValueType> },
}

#[derive(Clone, Copy)]
enum ColumnType {
    Text,
    Int,
    Double,
    List,
}

/// Appends `expr` as a SQL condition for rows of `kind`.
pub fn push_condition(sql: &mut Sql, kind: &Kind, expr: &Expr) -> Result<(), RegistryError> {
    match expr {
        Expr::And(parts) | Expr::Or(parts) => {
            let joiner = if matches!(expr, Expr::And(_)) { " AND " } else { " OR " };
            sql.push("(");
            for (index, part) in parts.iter().enumerate() {
                if index > 0 {
                    sql.push(joiner);
                }
                push_condition(sql, kind, part)?;
            }
            sql.push(")");
        }
        Expr::Not(inner) => {
            sql.push("NOT COALESCE((");
            push_condition(sql, kind, inner)?;
            sql.push("), FALSE)");
        }
        Expr::In { property, values, negated: true } => {
            let positive = Expr::In { property: property.clone(), values: values.clone(), negated: false };
            push_condition(sql, kind, &Expr::Not(Box::new(positive)))?;
        }
        Expr::Compare { property, op: op @ (CompareOp::NotLike | CompareOp::NotILike), value } => {
            let positive_op = if *op == CompareOp::NotLike { CompareOp::Like } else { CompareOp::ILike };
            let positive = Expr::Compare { property: property.clone(), op: positive_op, value: value.clone() };
            push_condition(sql, kind, &Expr::Not(Box::new(positive)))?;
        }
        Expr::Compare { property, op, value } => match resolve(kind, property) {
            Target::Column { column, ty } => push_column_compare(sql, column, ty, *op, value)?,
            Target::Custom { name, value_type } => {
                let value_type = value_type.unwrap_or_else(|| value.inferred_type());
                push_custom_open(sql, kind, &name, Some(value_type));
                sql.push(" AND ");
                push_compare(sql, &format!("cp.{}", custom_column(value_type)), *op, custom_value(value_type, value)?);
                sql.push(")");
            }
        },
        Expr::In { property, values, negated: false } => match resolve(kind, property) {
            Target::Column { ty: ColumnType::List, .. } => {
                let alternatives = values
                    .iter()
                    .map(|value| Expr::Compare { property: property.clone(), op: CompareOp::Eq, value: value.clone() })
                    .collect();
                push_condition(sql, kind, &Expr::Or(alternatives))?;
            }
            Target::Column { column, ty } => {
                sql.push(&format!("t.{column} IN ("));
                for (index, value) in values.iter().enumerate() {
                    if index > 0 {
                        sql.push(", ");
                    }
                    sql.arg(column_value(column, ty, value)?);
                }
                sql.push(")");
            }
            Target::Custom { name, value_type } => {
                let value_type = value_type.unwrap_or_else(|| values[0].inferred_type());
                push_custom_open(sql, kind, &name, Some(value_type));
                sql.push(&format!(" AND cp.{} IN (", custom_column(value_type)));
                for (index, value) in values.iter().enumerate() {
                    if index > 0 {
                        sql.push(", ");
                    }
                    sql.arg(custom_value(value_type, value)?);
                }
                sql.push("))");
            }
        },
        Expr::IsNull { property, negated } => match resolve(kind, property) {
            Target::Column { column, .. } => {
                sql.push(&format!("t.{column} IS {}NULL", if *negated { "NOT " } else { "" }));
            }
            Target::Custom { name, value_type } => {
                if !negated {
                    sql.push("NOT ");
                }
                push_custom_open(sql, kind, &name, value_type);
                sql.push(")");
            }
        },
    }
    Ok(())
}

fn resolve(kind: &Kind, property: &Property) -> Target {
    let name = property.name();
    if property.suffix.is_some() || property.path.len() > 1 {
        return Target::Custom { name, value_type: property.suffix };
    }
    let builtin = match name.as_str() {
        "id" => Some(("id", ColumnType::Int)),
        "createTimeSinceEpoch" => Some(("create_time", ColumnType::Int)),
        "lastUpdateTimeSinceEpoch" => Some(("update_time", ColumnType::Int)),
        "artifactType" if kind.is_artifact() => Some(("artifact_type", ColumnType::Text)),
        _ => None,
    };
    if let Some((column, ty)) = builtin {
        return Target::Column { column, ty };
    }
    let field = if kind.is_artifact() {
        ARTIFACT_KINDS.iter().find_map(|artifact_kind| artifact_kind.field(&name))
    } else {
        kind.field(&name)
    };
    match field {
        Some(field) => Target::Column { column: field.column, ty: column_type(field.ty) },
        None => Target::Custom { name, value_type: None },
    }
}

fn column_type(field_type: FieldType) -> ColumnType {
    match field_type {
        FieldType::Text | FieldType::Enum(_) => ColumnType::Text,
        FieldType::Id(_) | FieldType::Millis | FieldType::Integer => ColumnType::Int,
        FieldType::Double => ColumnType::Double,
        FieldType::TextList => ColumnType::List,
    }
}

fn push_column_compare(
    sql: &mut Sql,
    column: &'static str,
    ty: ColumnType,
    op: CompareOp,
    value: &Literal,
) -> Result<(), RegistryError> {
    let qualified = format!("t.{column}");
    match ty {
        ColumnType::List => {
            let text = value.to_string();
            let (op, pattern) = match op {
                CompareOp::Eq => (CompareOp::Like, format!("%\"{text}\"%")),
                CompareOp::Ne => {
                    sql.push("NOT COALESCE((");
                    push_compare(sql, &qualified, CompareOp::Like, Value::Text(format!("%\"{text}\"%")));
                    sql.push("), FALSE)");
                    return Ok(());
                }
                CompareOp::Like | CompareOp::ILike => (op, text),
                _ => {
                    return Err(RegistryError::Invalid(format!(
                        "invalid filter query: {column} is a list and supports only =, !=, IN, LIKE and ILIKE"
                    )));
                }
            };
            push_compare(sql, &qualified, op, Value::Text(pattern));
        }
        _ => {
            if op.is_pattern() && !matches!(ty, ColumnType::Text) {
                return Err(RegistryError::Invalid(format!(
                    "invalid filter query: LIKE needs a text property, not {column}"
                )));
            }
            push_compare(sql, &qualified, op, column_value(column, ty, value)?);
        }
    }
    Ok(())
}

/// Appends `column op value`, lowering both sides for ILIKE.
fn push_compare(sql: &mut Sql, column: &str, op: CompareOp, value: Value) {
    if op.is_case_insensitive() {
        sql.push(&format!("LOWER({column}) {} LOWER(", op.sql()));
        sql.arg(value);
        sql.push(")");
    } else {
        sql.push(&format!("{column} {} ", op.sql()));
        sql.arg(value);
    }
}

/// Opens `EXISTS (SELECT 1 FROM custom_property WHERE …` for one property of the row `t`; the caller
/// closes it. The correlated form probes the primary key `(entity_kind, entity_id, name)` per candidate
/// row, so a page stops as soon as it is full instead of materializing every matching property.
fn push_custom_open(sql: &mut Sql, kind: &Kind, name: &str, value_type: Option<ValueType>) {
    sql.push(&format!(
        "EXISTS (SELECT 1 FROM custom_property cp WHERE cp.entity_kind = {} AND cp.entity_id = t.id AND cp.name = ",
        kind.property_kind
    ));
    sql.arg(Value::Text(name.to_owned()));
    if let Some(value_type) = value_type {
        sql.push(&format!(" AND cp.value_type = '{}'", value_type_name(value_type)));
    }
}

/// The `custom_property.value_type` of a filter value type.
pub fn value_type_name(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::String => "string",
        ValueType::Int => "int",
        ValueType::Double => "double",
        ValueType::Bool => "bool",
    }
}

fn custom_column(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::String => "string_value",
        ValueType::Int => "int_value",
        ValueType::Double => "double_value",
        ValueType::Bool => "bool_value",
    }
}

fn column_value(column: &str, ty: ColumnType, literal: &Literal) -> Result<Value, RegistryError> {
    match ty {
        ColumnType::Text | ColumnType::List => Ok(Value::Text(literal.to_string())),
        ColumnType::Int => as_int(literal).map(Value::Int).ok_or_else(|| type_error(column, "an integer", literal)),
        ColumnType::Double => {
            as_double(literal).map(Value::Double).ok_or_else(|| type_error(column, "a number", literal))
        }
    }
}

fn custom_value(value_type: ValueType, literal: &Literal) -> Result<Value, RegistryError> {
    let suffix = custom_column(value_type);
    match value_type {
        ValueType::String => Ok(Value::Text(literal.to_string())),
        ValueType::Int => as_int(literal).map(Value::Int).ok_or_else(|| type_error(suffix, "an integer", literal)),
        ValueType::Double => {
            as_double(literal).map(Value::Double).ok_or_else(|| type_error(suffix, "a number", literal))
        }
        ValueType::Bool => match literal {
            Literal::Bool(flag) => Ok(Value::Bool(*flag)),
            Literal::String(text) if text.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Literal::String(text) if text.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(type_error(suffix, "true or false", literal)),
        },
    }
}

fn as_int(literal: &Literal) -> Option<i64> {
    match literal {
        Literal::Int(number) => Some(*number),
        Literal::String(text) => text.parse().ok(),
        _ => None,
    }
}

fn as_double(literal: &Literal) -> Option<f64> {
    match literal {
        Literal::Int(number) => Some(*number as f64),
        Literal::Double(number) => Some(*number),
        Literal::String(text) => text.parse().ok(),
        Literal::Bool(_) => None,
    }
}

fn type_error(what: &str, expected: &str, literal: &Literal) -> RegistryError {
    RegistryError::Invalid(format!("invalid filter query: {what} expects {expected}, got '{literal}'"))
}

/// A custom-property equality that can drive an id-ordered list from a value index.
pub struct Driver {
    name: String,
    value_type: ValueType,
    value: Value,
}

/// Returns a custom-property equality that every match of `expr` must satisfy (the expression itself or
/// a conjunct of a top-level AND), if there is one.
pub fn equality_driver(kind: &Kind, expr: &Expr) -> Option<Driver> {
    let candidates: Vec<&Expr> = match expr {
        Expr::And(parts) => parts.iter().collect(),
        other => vec![other],
    };
    candidates.into_iter().find_map(|candidate| match candidate {
        Expr::Compare { property, op: CompareOp::Eq, value } => match resolve(kind, property) {
            Target::Custom { name, value_type } => {
                let value_type = value_type.unwrap_or_else(|| value.inferred_type());
                let value = custom_value(value_type, value).ok()?;
                Some(Driver { name, value_type, value })
            }
            Target::Column { .. } => None,
        },
        _ => None,
    })
}

/// Appends `FROM custom_property d JOIN <table> t ON t.id = d.entity_id WHERE <driver>`: rows come from
/// the value index in entity id order.
pub fn push_driven_from(sql: &mut Sql, kind: &Kind, driver: Driver) {
    sql.push(&format!(
        " FROM custom_property d JOIN {} t ON t.id = d.entity_id WHERE d.entity_kind = {} AND d.name = ",
        kind.table, kind.property_kind
    ));
    sql.arg(Value::Text(driver.name));
    sql.push(&format!(
        " AND d.value_type = '{}' AND d.{} = ",
        value_type_name(driver.value_type),
        custom_column(driver.value_type)
    ));
    sql.arg(driver.value);
}
