//! `filterQuery` over MCP servers, evaluated in memory: the shared filter language ([`crate::filter`]) on
//! upstream's property names.
//!
//! | property | type |
//! |---|---|
//! | `name`, `description`, `provider`, `version`, `license`, `license_link`, `logo`, `readme`, `deploymentMode`, `documentationUrl`, `repositoryUrl`, `sourceCode`, `publishedDate`, `externalId`, `source_id` | string |
//! | `tags`, `transports` | list: `=`/`IN` test membership, `LIKE` matches the JSON text (`tags LIKE '%"db"%'`) |
//! | `verifiedSource`, `secureEndpoint`, `sast`, `readOnlyTools` (also under `securityIndicators.`) | boolean |
//! | `id`, `toolCount`, `createTimeSinceEpoch`, `lastUpdateTimeSinceEpoch` | integer |
//! | anything else | a custom property, typed by its value (`.string_value` and the like pin the type) |
//!
//! A missing value matches nothing, not even `!=` (SQL's NULL). A well-known property compared with a
//! literal of another type is an error (`verifiedSource = 'yes'`); a custom property of another type
//! than the literal simply does not match, since servers may type the same property differently.

use modelcat_sources::MetadataValue;
use modelcat_sources::mcp::McpTool;

use super::Entry;
use crate::filter::{CompareOp, Expr, Literal, Property, ValueType};

/// A filter that cannot be evaluated on servers: a client error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid filter query: {0}")]
pub struct FilterError(pub String);

/// One property's value on one server.
#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
    List(&'a [String]),
}

impl Field<'_> {
    fn noun(&self) -> &'static str {
        match self {
            Field::Str(_) => "a string",
            Field::Int(_) | Field::Double(_) => "a number",
            Field::Bool(_) => "a boolean",
            Field::List(_) => "a list",
        }
    }
}

const INDICATORS: [&str; 4] = ["verifiedSource", "secureEndpoint", "sast", "readOnlyTools"];

/// A property's value, and whether the property is well known (its type fixed).
fn resolve<'a>(entry: &'a Entry, property: &Property) -> (Option<Field<'a>>, bool) {
    let server = &*entry.server;
    let name = property.name();
    let name = name.strip_prefix("securityIndicators.").filter(|name| INDICATORS.contains(name)).unwrap_or(&name);
    let text = |value: &'a Option<String>| value.as_deref().map(Field::Str);
    let known = match name {
        "name" => Some(Field::Str(&server.name)),
        "description" => text(&server.description),
        "provider" => text(&server.provider),
        "version" => text(&server.version),
        "license" => text(&server.license),
        "license_link" => text(&server.license_link),
        "logo" => text(&server.logo),
        "readme" => text(&server.readme),
        "deploymentMode" => text(&server.deployment_mode),
        "documentationUrl" => text(&server.documentation_url),
        "repositoryUrl" => text(&server.repository_url),
        "sourceCode" => text(&server.source_code),
        "publishedDate" => text(&server.published_date),
        "externalId" => text(&server.external_id),
        "source_id" => Some(Field::Str(&entry.source_id)),
        "tags" => Some(Field::List(&server.tags)),
        "transports" => Some(Field::List(&server.transports)),
        "id" => Some(Field::Int(entry.id as i64)),
        "toolCount" => Some(Field::Int(server.tools.len() as i64)),
        "createTimeSinceEpoch" => Some(Field::Int(entry.create_time)),
        "lastUpdateTimeSinceEpoch" => Some(Field::Int(entry.update_time)),
        indicator if INDICATORS.contains(&indicator) => {
            let indicators = server.security_indicators.unwrap_or_default();
            let value = indicators.fields().into_iter().find(|(field, _)| *field == indicator).and_then(|(_, v)| v);
            return (value.map(Field::Bool), true);
        }
        _ => {
            let value = server.custom_properties.get(name).and_then(|value| {
                let field = match value {
                    MetadataValue::String(text) => Field::Str(text),
                    MetadataValue::Int(number) => Field::Int(*number),
                    MetadataValue::Double(number) => Field::Double(*number),
                    MetadataValue::Bool(flag) => Field::Bool(*flag),
                };
                let typed = match (property.suffix, field) {
                    (None, _) => true,
                    (Some(ValueType::String), Field::Str(_)) | (Some(ValueType::Bool), Field::Bool(_)) => true,
                    (Some(ValueType::Int | ValueType::Double), Field::Int(_) | Field::Double(_)) => true,
                    _ => false,
                };
                typed.then_some(field)
            });
            return (value, false);
        }
    };
    (known, true)
}

/// Whether the server matches the expression.
pub fn matches(expr: &Expr, entry: &Entry) -> Result<bool, FilterError> {
    evaluate(expr, &|property| Ok(resolve(entry, property)))
}

/// Whether a tool matches the expression (`name`, `description`, `accessType`).
pub fn tool_matches(expr: &Expr, tool: &McpTool) -> Result<bool, FilterError> {
    evaluate(expr, &|property| {
        let field = match property.name().as_str() {
            "name" => Some(Field::Str(&tool.name)),
            "description" => tool.description.as_deref().map(Field::Str),
            "accessType" => Some(Field::Str(&tool.access_type)),
            other => {
                return Err(FilterError(format!(
                    "unknown tool property {other:?}: use name, description or accessType"
                )));
            }
        };
        Ok((field, true))
    })
}

/// A property's value and whether it is well known, or why the property cannot be used.
type Resolved<'a> = Result<(Option<Field<'a>>, bool), FilterError>;

fn evaluate<'a>(expr: &Expr, resolve: &dyn Fn(&Property) -> Resolved<'a>) -> Result<bool, FilterError> {
    Ok(match expr {
        Expr::And(parts) => {
            for part in parts {
                if !evaluate(part, resolve)? {
                    return Ok(false);
                }
            }
            true
        }
        Expr::Or(parts) => {
            for part in parts {
                if evaluate(part, resolve)? {
                    return Ok(true);
                }
            }
            false
        }
        Expr::Not(inner) => !evaluate(inner, resolve)?,
        Expr::IsNull { property, negated } => resolve(property)?.0.is_some() == *negated,
        Expr::Compare { property, op, value } => {
            let (field, known) = resolve(property)?;
            compare(field, *op, value, &property.name(), known)?
        }
        Expr::In { property, values, negated } => {
            let (field, known) = resolve(property)?;
            if field.is_none() {
                return Ok(false);
            }
            let mut any = false;
            for value in values {
                any |= compare(field, CompareOp::Eq, value, &property.name(), known)?;
            }
            any != *negated
        }
    })
}

fn compare(
    field: Option<Field<'_>>,
    op: CompareOp,
    literal: &Literal,
    name: &str,
    known: bool,
) -> Result<bool, FilterError> {
    let Some(field) = field else { return Ok(false) };
    if op.is_pattern() {
        let Literal::String(pattern) = literal else {
            return Err(FilterError(format!("LIKE on {name} needs a string pattern")));
        };
        let like = like_matcher(pattern, op.is_case_insensitive());
        let matched = match field {
            Field::Str(text) => like.is_match(text),
            Field::List(items) => like.is_match(&serde_json::to_string(items).unwrap_or_default()),
            _ if known => return Err(FilterError(format!("LIKE needs a string property, not {name}"))),
            _ => return Ok(false),
        };
        return Ok(matched != matches!(op, CompareOp::NotLike | CompareOp::NotILike));
    }
    let ordering = match (field, literal) {
        (Field::Str(text), Literal::String(value)) => text.cmp(value.as_str()),
        (Field::Bool(flag), Literal::Bool(value)) if matches!(op, CompareOp::Eq | CompareOp::Ne) => flag.cmp(value),
        (Field::List(items), Literal::String(value)) if matches!(op, CompareOp::Eq | CompareOp::Ne) => {
            return Ok(items.iter().any(|item| item == value) == (op == CompareOp::Eq));
        }
        (Field::Int(_) | Field::Double(_), Literal::Int(_) | Literal::Double(_)) => {
            let number = |field| match field {
                Field::Int(number) => number as f64,
                Field::Double(number) => number,
                _ => unreachable!("numbers"),
            };
            let value = match literal {
                Literal::Int(number) => *number as f64,
                Literal::Double(number) => *number,
                _ => unreachable!("numbers"),
            };
            let Some(ordering) = number(field).partial_cmp(&value) else { return Ok(false) };
            ordering
        }
        _ if known => {
            let shown = match literal {
                Literal::String(text) => format!("the string '{text}'"),
                other => format!("{other}"),
            };
            return Err(FilterError(format!(
                "type mismatch: {name} is {}, compared {} with {shown}",
                field.noun(),
                op.sql()
            )));
        }
        _ => return Ok(false),
    };
    Ok(match op {
        CompareOp::Eq => ordering.is_eq(),
        CompareOp::Ne => ordering.is_ne(),
        CompareOp::Gt => ordering.is_gt(),
        CompareOp::Ge => ordering.is_ge(),
        CompareOp::Lt => ordering.is_lt(),
        CompareOp::Le => ordering.is_le(),
        _ => unreachable!("patterns handled above"),
    })
}

/// SQL `LIKE`: `%` any run, `_` any one character.
#[derive(Debug, Clone)]
pub struct Like {
    pattern: Vec<char>,
    case_insensitive: bool,
}

/// A `LIKE` matcher for `pattern`.
pub fn like_matcher(pattern: &str, case_insensitive: bool) -> Like {
    let pattern = if case_insensitive { pattern.to_lowercase() } else { pattern.to_owned() };
    Like { pattern: pattern.chars().collect(), case_insensitive }
}

impl Like {
    /// Wildcard matching with one backtrack point per `%`: linear in practice, never exponential.
    pub fn is_match(&self, text: &str) -> bool {
        let text: Vec<char> =
            if self.case_insensitive { text.to_lowercase().chars().collect() } else { text.chars().collect() };
        let (mut t, mut p) = (0, 0);
        let mut resume: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.pattern.get(p) {
                Some('%') => {
                    resume = Some((p, t));
                    p += 1;
                }
                Some(&c) if c == '_' || c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match resume {
                    Some((star, from)) => {
                        p = star + 1;
                        t = from + 1;
                        resume = Some((star, from + 1));
                    }
                    None => return false,
                },
            }
        }
        self.pattern[p..].iter().all(|c| *c == '%')
    }
}
