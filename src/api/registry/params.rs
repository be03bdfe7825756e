//! Query parameters of registry routes, validated as upstream's `common.yaml` patterns require.
//!
//! [`Params`] is an extractor over the raw query string: repeated keys are kept, a NUL byte anywhere is a
//! 400, and list parameters become a [`ListQuery`] with a bounded page size and a token bound to the query.

use crate::api::error::ApiError;
pub use crate::api::params::Params;
use crate::api::registry::wire::parse_id_text;
use crate::filter::{self, CompareOp, Expr, Literal, Property};
use crate::pagination;
use crate::registry::schema::Kind;
use crate::registry::{ListQuery, OrderField};

/// Page-size bounds of registry lists.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    /// Used when `pageSize` is omitted (upstream returns everything; modelcat bounds it).
    pub default_page_size: u32,
    /// Larger requests are served in pages of this size, with a `nextPageToken`.
    pub max_page_size: u32,
}

impl Params {
    /// Returns the id in `key`, if given.
    pub fn id(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(value) => parse_id_text(value).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!("invalid {key} \"{value}\": expected a positive integer id"))
            }),
        }
    }

    /// Builds the list query of `kind`: `filterQuery` ANDed with `extra`, order, page size and token.
    /// Returns the query and the hash its page tokens are bound to.
    pub fn list_query(
        &self,
        kind: &Kind,
        parent: Option<(&'static str, i64)>,
        extra: Vec<Expr>,
        limits: PageLimits,
    ) -> Result<(ListQuery, String), ApiError> {
        let filter_text = self.get("filterQuery").unwrap_or_default();
        if !filter_text.bytes().all(|byte| (0x20..=0x7e).contains(&byte)) {
            return Err(ApiError::bad_request("invalid filter query: only printable ASCII is allowed"));
        }
        let mut conditions: Vec<Expr> = filter::parse(filter_text)?.into_iter().collect();
        conditions.extend(extra);
        let filter = match conditions.len() {
            0 => None,
            1 => conditions.pop(),
            _ => Some(Expr::And(conditions)),
        };
        let order = match self.get("orderBy").unwrap_or_default() {
            "CREATE_TIME" => OrderField::CreateTime,
            "LAST_UPDATE_TIME" => OrderField::LastUpdateTime,
            "NAME" => OrderField::Name,
            _ => OrderField::Id,
        };
        let descending = self.descending()?;
        let page_size = self.page_size(limits.default_page_size, limits.max_page_size)?;
        let hash = self.query_hash(kind, parent);
        let after = pagination::decode(self.get("nextPageToken").unwrap_or_default(), &hash)?;
        Ok((ListQuery { filter, parent, parents: None, order, descending, page_size, after, visible_to: None }, hash))
    }
}

impl Params {
    /// Hashes what selects and orders a list: the route's kind and parent and every parameter but the
    /// page position and size, so a page token only continues the query that produced it.
    fn query_hash(&self, kind: &Kind, parent: Option<(&'static str, i64)>) -> String {
        let parent_text = parent.map(|(column, id)| format!("{column}={id}")).unwrap_or_default();
        let parameters = self.list_parameters();
        let mut parts = vec![kind.table, kind.artifact_type.unwrap_or_default(), parent_text.as_str()];
        parts.extend(parameters.iter().map(String::as_str));
        pagination::query_hash(&parts)
    }
}

/// `property = 'value'` as a filter expression.
pub fn equals(property: &str, value: Literal) -> Expr {
    Expr::Compare { property: Property { path: vec![property.to_owned()], suffix: None }, op: CompareOp::Eq, value }
}
