//! Governance policies, written in Cedar: they decide whether a legal lifecycle move may go ahead.
//!
//! Contract:
//! - A policy set is accepted only when it parses, validates strictly against [`SCHEMA`], gives every
//!   policy a unique `@id`, and gives every `forbid` a `@reason`; otherwise [`PolicyError`] lists every
//!   problem. `@explain("a, b")` names the context attributes whose details a refusal lists.
//! - [`DEFAULT_POLICIES`] holds the seed rules; its version is `builtin-` and the first 12 hex digits of
//!   its SHA-256, so a decision names exactly the text that made it. Stored sets are `v1`, `v2`, ….
//! - [`Engine::decide`] answers an [`Ask`] (a lifecycle move, or a share of a serving environment's
//!   traffic) and fails closed: it is allowed only when a policy permits it, none forbids it, and no
//!   policy failed to evaluate. A refusal names each deciding policy with its reason and details.
//! - Facts that need loops (artifacts, evaluations, signatures) are computed in Rust ([`Facts`]); Cedar
//!   sees counts.

mod facts;

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Effect, Entities, Entity, EntityUid, PolicyId, PolicySet, Request,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use facts::{ArtifactFacts, EvaluationFacts, Facts, SignatureFacts};

use super::lifecycle::State;

/// The schema policies are validated against (Cedar schema syntax).
pub const SCHEMA: &str = include_str!("schema.cedarschema");
/// The seed policies, in force until a policy set is stored.
pub const DEFAULT_POLICIES: &str = include_str!("default.cedar");

/// Why a policy set was not accepted: every problem found.
#[derive(Debug, thiserror::Error)]
#[error("the policies were not accepted: {}", problems.join("; "))]
pub struct PolicyError {
    pub problems: Vec<String>,
}

/// A compiled policy set, with what each `forbid` says when it refuses.
#[derive(Debug)]
pub struct Policies {
    pub version: String,
    pub text: String,
    set: PolicySet,
    forbids: HashMap<String, Forbid>,
}

#[derive(Debug)]
struct Forbid {
    reason: String,
    explain: Vec<String>,
}

/// Why a policy refused a move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The policy's `@id`.
    pub rule: String,
    pub reason: String,
    /// The facts behind it, such as each artifact's missing digest or each failing metric.
    pub details: Vec<String>,
}

/// What the policies decided about one move.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub allowed: bool,
    pub refusals: Vec<Refusal>,
    pub policy_version: String,
}

/// What a request asks the policies.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// Moving a version to a state.
    Transition(State),
    /// A version taking `weight` percent of a serving environment's traffic for its model.
    Deploy { environment: String, weight: u8 },
}

impl Ask {
    fn action(&self) -> &'static str {
        match self {
            Ask::Transition(_) => "transition",
            Ask::Deploy { .. } => "deploy",
        }
    }

    fn describe(&self) -> String {
        match self {
            Ask::Transition(to) => format!("the move to {to}"),
            Ask::Deploy { environment, weight } => format!("{weight}% of the traffic of {environment}"),
        }
    }
}

/// Compiles and evaluates policy sets against the schema.
pub struct Engine {
    schema: Schema,
    validator: Validator,
    authorizer: Authorizer,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    pub fn new() -> Self {
        let (schema, _warnings) = Schema::from_cedarschema_str(SCHEMA).expect("the governance schema is valid");
        Self { validator: Validator::new(schema.clone()), schema, authorizer: Authorizer::new() }
    }

    /// The seed policies.
    pub fn builtin(&self) -> Policies {
        let digest = Sha256::digest(DEFAULT_POLICIES.as_bytes());
        let version = format!("builtin-{}", &crate::hex::encode(&digest)[..12]);
        self.compile(version, DEFAULT_POLICIES).expect("the default policies are valid")
    }

    /// Parses and validates a policy set; `version` names it in every decision.
    pub fn compile(&self, version: String, text: &str) -> Result<Policies, PolicyError> {
        let fail = |problems: Vec<String>| Err(PolicyError { problems });
        let parsed = match PolicySet::from_str(text) {
            Ok(parsed) => parsed,
            Err(errors) => return fail(errors.iter().map(|error| format!("syntax: {error}")).collect()),
        };
        let mut problems = Vec::new();
        if parsed.templates().next().is_some() {
            problems.push("templates are not supported: write static policies".to_owned());
        }
        let mut set = PolicySet::new();
        let mut forbids = HashMap::new();
        for (index, policy) in parsed.policies().enumerate() {
            let Some(id) = policy.annotation("id").map(str::to_owned) else {
                problems.push(format!("policy {} has no @id annotation", index + 1));
                continue;
            };
            if policy.effect() == Effect::Forbid {
                match policy.annotation("reason") {
                    Some(reason) if !reason.trim().is_empty() => {
                        let explain = policy.annotation("explain").unwrap_or_default();
                        let explain = explain.split(',').map(str::trim).filter(|name| !name.is_empty());
                        let explain: Vec<String> = explain.map(str::to_owned).collect();
                        for name in explain.iter().filter(|name| !Facts::EXPLAINED.contains(&name.as_str())) {
                            problems.push(format!(
                                "policy {id:?} explains with {name:?}, which is not a context attribute"
                            ));
                        }
                        forbids.insert(id.clone(), Forbid { reason: reason.to_owned(), explain });
                    }
                    _ => problems.push(format!("forbid policy {id:?} has no @reason annotation")),
                }
            }
            if let Err(error) = set.add(policy.new_id(PolicyId::new(&id))) {
                problems.push(format!("policy {id:?}: {error}"));
            }
        }
        let validation = self.validator.validate(&set, ValidationMode::Strict);
        problems.extend(validation.validation_errors().map(|error| format!("{}: {error}", error.policy_id())));
        if !problems.is_empty() {
            return fail(problems);
        }
        Ok(Policies { version, text: text.to_owned(), set, forbids })
    }

    /// Decides what `actor` asks of a version, given the version's facts.
    pub fn decide(&self, policies: &Policies, actor: &str, version: i64, ask: &Ask, facts: &Facts) -> Verdict {
        let refuse = |rule: &str, reason: String| Verdict {
            allowed: false,
            refusals: vec![Refusal { rule: rule.to_owned(), reason, details: Vec::new() }],
            policy_version: policies.version.clone(),
        };
        let request = match self.request(actor, version, ask, facts) {
            Ok(request) => request,
            Err(error) => return refuse("request", format!("the facts do not fit the policy schema: {error}")),
        };
        let response = self.authorizer.is_authorized(&request.0, &policies.set, &request.1);
        let diagnostics = response.diagnostics();
        let errors: Vec<_> = diagnostics.errors().map(ToString::to_string).collect();
        if !errors.is_empty() {
            return refuse("evaluation", format!("a policy failed to evaluate: {}", errors.join("; ")));
        }
        if response.decision() == Decision::Allow {
            return Verdict { allowed: true, refusals: Vec::new(), policy_version: policies.version.clone() };
        }
        let mut refusals: Vec<Refusal> = diagnostics
            .reason()
            .filter_map(|id| {
                let forbid = policies.forbids.get(&id.to_string())?;
                let details = forbid.explain.iter().flat_map(|name| facts.details(name, ask)).collect();
                Some(Refusal { rule: id.to_string(), reason: forbid.reason.clone(), details })
            })
            .collect();
        refusals.sort_by(|a, b| a.rule.cmp(&b.rule));
        if refusals.is_empty() {
            return refuse("default-deny", format!("no policy permits {}", ask.describe()));
        }
        Verdict { allowed: false, refusals, policy_version: policies.version.clone() }
    }

    /// The fewest distinct approvals with which the policies would allow the move to `to`, the other
    /// facts unchanged; `None` when no count up to ten would.
    pub fn approvals_needed(&self, policies: &Policies, version: i64, to: State, facts: &Facts) -> Option<usize> {
        let mut probe = facts.clone();
        (0..=10).find(|&approvals| {
            probe.approvals = approvals;
            self.decide(policies, "", version, &Ask::Transition(to), &probe).allowed
        })
    }

    fn request(&self, actor: &str, version: i64, ask: &Ask, facts: &Facts) -> Result<(Request, Entities), String> {
        let uid = |kind: &str, id: &str| {
            EntityUid::from_str(&format!("{kind}::{}", serde_json::Value::from(id))).map_err(|error| error.to_string())
        };
        let resource = uid("ModelVersion", &version.to_string())?;
        let entity = Entity::new(resource.clone(), facts.resource_attributes(), Default::default())
            .map_err(|error| error.to_string())?;
        let entities = Entities::from_entities([entity], Some(&self.schema)).map_err(|error| error.to_string())?;
        let context = Context::from_pairs(facts.context(ask)).map_err(|error| error.to_string())?;
        let action = uid("Action", ask.action())?;
        let request = Request::new(uid("User", actor)?, action, resource, context, Some(&self.schema))
            .map_err(|error| error.to_string())?;
        Ok((request, entities))
    }
}

fn string(text: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(text.to_owned())
}

#[cfg(test)]
mod tests;
