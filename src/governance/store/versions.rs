//! A version's lifecycle: where it stands, its transitions and reviews, the facts the policies decide on,
//! and a dry run of the policies.

use serde_json::json;

use super::{Current, Fields, GovernanceStore, Reader, digest};
use crate::audit;
use crate::governance::lifecycle::{Decision, Stage, State};
use crate::governance::policy::{ArtifactFacts, Ask, Facts, Verdict};
use crate::governance::{GovernanceError, PolicyCheck, Review, ReviewRound, Transition, VersionStatus};
use crate::registry::{MetaValue, Properties};
use crate::store::changes::{self, ModelOf};
use crate::store::now_millis;
use crate::store::outbox::{self as events, EventType};
use crate::store::sql::{Col, DbError, Sql, Transaction, Value};

impl GovernanceStore {
    pub(super) async fn current(
        &self,
        reader: &mut Reader<'_>,
        version: i64,
        lock: bool,
    ) -> Result<Current, GovernanceError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT v.registered_model_id, l.state, l.submitted_by, l.round FROM model_version v \
             LEFT JOIN version_lifecycle l ON l.model_version_id = v.id WHERE v.id = ",
        )
        .arg(Value::Int(version));
        if lock {
            self.lock(&mut sql, "v");
        }
        let cols = [Col::Int, Col::Text, Col::Text, Col::Int];
        let row = reader.read(&sql, &cols).await?.into_iter().next();
        let mut fields = Fields::of(row.ok_or_else(|| version_missing(version))?);
        Ok(Current {
            model: fields.int().unwrap_or_default(),
            state: fields.text().and_then(|state| state.parse().ok()).unwrap_or(State::Draft),
            submitted_by: fields.text(),
            round: fields.int().unwrap_or(0),
        })
    }

    /// The registered model a version belongs to.
    pub async fn model_of(&self, version: i64) -> Result<i64, GovernanceError> {
        Ok(self.current(&mut Reader::Db(&*self.db), version, false).await?.model)
    }

    /// The lifecycle state of a version (a draft when none is recorded).
    pub async fn state(&self, version: i64) -> Result<State, GovernanceError> {
        Ok(self.current(&mut Reader::Db(&*self.db), version, false).await?.state)
    }

    /// A version of `model` under review or in use (submitted through deprecated), if any.
    pub async fn version_in_use(&self, model: i64) -> Result<Option<(i64, State)>, GovernanceError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT v.id, l.state FROM version_lifecycle l JOIN model_version v ON v.id = l.model_version_id \
             WHERE l.state NOT IN ('draft', 'changes_requested', 'retired') AND v.registered_model_id = ",
        )
        .arg(Value::Int(model))
        .push(" ORDER BY v.id LIMIT 1");
        let row = self.db.read(&sql, &[Col::Int, Col::Text]).await?.into_iter().next();
        Ok(row.map(|row| {
            let mut fields = Fields::of(row);
            (
                fields.int().unwrap_or_default(),
                fields.text().and_then(|state| state.parse().ok()).unwrap_or(State::Draft),
            )
        }))
    }

    /// Where a version stands: its state, what may come next, its review round and its aliases.
    pub async fn version(&self, version: i64) -> Result<VersionStatus, GovernanceError> {
        let mut reader = Reader::Db(&*self.db);
        let current = self.current(&mut reader, version, false).await?;
        let review = match current.state.review_stage() {
            Some(stage) => {
                let facts = self.facts(&mut reader, &current, version).await?;
                let policies = self.policies_in_force(&mut reader).await?;
                let target = stage.approved_state();
                let approvals_needed = self.policy.engine.approvals_needed(&policies, version, target, &facts);
                let mut sql = self.review_select();
                sql.push(" WHERE model_version_id = ")
                    .arg(Value::Int(version))
                    .push(" AND round = ")
                    .arg(Value::Int(current.round))
                    .push(" AND decision = 'approve' ORDER BY id");
                let approvals = self.reviews_of(&mut reader, &sql).await?;
                Some(ReviewRound { stage, approvals_needed, approvals })
            }
            None => None,
        };
        let mut sql = self.sql();
        sql.push("SELECT alias FROM model_alias WHERE model_version_id = ")
            .arg(Value::Int(version))
            .push(" ORDER BY alias");
        let aliases = reader.read(&sql, &[Col::Text]).await?.into_iter().filter_map(|row| Fields::of(row).text());
        Ok(VersionStatus {
            model_version_id: version.to_string(),
            registered_model_id: current.model.to_string(),
            state: current.state,
            submitted_by: current.submitted_by,
            next_states: current.state.successors().to_vec(),
            review,
            aliases: aliases.collect(),
        })
    }

    /// A version's transitions, oldest first.
    pub async fn transitions(&self, version: i64) -> Result<Vec<Transition>, GovernanceError> {
        self.current(&mut Reader::Db(&*self.db), version, false).await?;
        let mut sql = self.sql();
        sql.push(
            "SELECT id, from_state, to_state, actor, comment, at, policy_version FROM version_transition \
             WHERE model_version_id = ",
        )
        .arg(Value::Int(version))
        .push(" ORDER BY id");
        let cols = [Col::Int, Col::Text, Col::Text, Col::Text, Col::Text, Col::Int, Col::Text];
        let rows = self.db.read(&sql, &cols).await?;
        let state = |text: Option<String>| text.and_then(|text| text.parse().ok()).unwrap_or(State::Draft);
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut fields = Fields::of(row);
                Transition {
                    id: fields.id(),
                    from: state(fields.text()),
                    to: state(fields.text()),
                    actor: fields.text().unwrap_or_default(),
                    comment: fields.text(),
                    at: fields.time(),
                    policy_version: fields.text(),
                }
            })
            .collect())
    }

    /// A version's reviews, oldest first.
    pub async fn reviews(&self, version: i64) -> Result<Vec<Review>, GovernanceError> {
        let mut reader = Reader::Db(&*self.db);
        self.current(&mut reader, version, false).await?;
        let mut sql = self.review_select();
        sql.push(" WHERE model_version_id = ").arg(Value::Int(version)).push(" ORDER BY id");
        self.reviews_of(&mut reader, &sql).await
    }

    fn review_select(&self) -> Sql {
        let mut sql = self.sql();
        sql.push("SELECT id, stage, reviewer, decision, comment, at FROM version_review");
        sql
    }

    async fn reviews_of(&self, reader: &mut Reader<'_>, sql: &Sql) -> Result<Vec<Review>, GovernanceError> {
        let cols = [Col::Int, Col::Text, Col::Text, Col::Text, Col::Text, Col::Int];
        let rows = reader.read(sql, &cols).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut fields = Fields::of(row);
                Review {
                    id: fields.id(),
                    stage: if fields.text().as_deref() == Some("production") {
                        Stage::Production
                    } else {
                        Stage::Staging
                    },
                    reviewer: fields.text().unwrap_or_default(),
                    decision: if fields.text().as_deref() == Some("approve") {
                        Decision::Approve
                    } else {
                        Decision::RequestChanges
                    },
                    comment: fields.text(),
                    at: fields.time(),
                }
            })
            .collect())
    }

    /// Moves a version to `target` if the lifecycle allows it and the policies in force allow it.
    pub async fn transition(
        &self,
        version: i64,
        target: State,
        comment: Option<String>,
    ) -> Result<VersionStatus, GovernanceError> {
        let actor = audit::current();
        let mut tx = self.db.begin().await?;
        let current = self.current(&mut Reader::Tx(&mut *tx), version, true).await?;
        if !current.state.may_move_to(target) {
            return Err(GovernanceError::Illegal(illegal_move(version, current.state, target)));
        }
        if target == State::Retired {
            self.refuse_if_aliased(&mut *tx, version).await?;
            if let Some((environment, weight)) = self.serving_weight(&mut *tx, version).await? {
                return Err(GovernanceError::Illegal(format!(
                    "model version {version} still takes {weight}% of the traffic in serving environment \
                     {environment}: deploy a split without it first"
                )));
            }
        }
        let facts = self.facts(&mut Reader::Tx(&mut *tx), &current, version).await?;
        let policies = self.policies_in_force(&mut Reader::Tx(&mut *tx)).await?;
        let verdict = self.policy.engine.decide(&policies, &actor.subject, version, &Ask::Transition(target), &facts);
        if !verdict.allowed {
            let Verdict { refusals, policy_version, .. } = verdict;
            return Err(GovernanceError::Refused { asked: format!("the move to {target}"), refusals, policy_version });
        }
        let decision = Decided { policy_version: verdict.policy_version, facts: facts.record(target) };
        let transition = self
            .record_transition(&mut *tx, version, &current, target, &actor.subject, &comment, Some(decision))
            .await?;
        let record = audit::Record {
            action: "lifecycle.transition".to_owned(),
            entity: format!("model_version/{version}"),
            before: digest(&current.state),
            after: digest(&target),
            detail: Some(format!("{} -> {target}", current.state)),
        };
        audit::append(&mut *tx, self.dialect(), record).await?;
        let data = json!({
            "registeredModelId": current.model.to_string(),
            "modelVersionId": version.to_string(),
            "transitionId": transition.to_string(),
            "from": current.state,
            "to": target,
            "actor": actor.subject,
            "comment": comment,
        });
        events::append(&mut *tx, self.dialect(), EventType::VersionTransitioned, data).await?;
        tx.commit().await?;
        self.version(version).await
    }

    /// Records a review of a version under review; one that requests changes sends it back.
    pub async fn review(
        &self,
        version: i64,
        decision: Decision,
        comment: Option<String>,
    ) -> Result<VersionStatus, GovernanceError> {
        let actor = audit::current();
        if !actor.authenticated {
            return Err(GovernanceError::Forbidden(
                "reviews need an authenticated caller (turn authentication on): nobody may approve their own submission"
                    .to_owned(),
            ));
        }
        let mut tx = self.db.begin().await?;
        let current = self.current(&mut Reader::Tx(&mut *tx), version, true).await?;
        let Some(stage) = current.state.review_stage() else {
            return Err(GovernanceError::Illegal(format!(
                "model version {version} is {}: only submitted or staging versions are reviewed",
                current.state
            )));
        };
        if current.submitted_by.as_deref() == Some(actor.subject.as_str()) {
            return Err(GovernanceError::Forbidden(format!(
                "{} submitted model version {version} and may not review it",
                actor.subject
            )));
        }
        let mut sql = self.sql();
        sql.push(
            "INSERT INTO version_review (model_version_id, round, stage, reviewer, decision, comment, at) VALUES (",
        )
        .arg(Value::Int(version))
        .push(", ")
        .arg(Value::Int(current.round))
        .push(", ")
        .arg(Value::Text(stage.as_str().to_owned()))
        .push(", ")
        .arg(Value::Text(actor.subject.clone()))
        .push(", ")
        .arg(Value::Text(decision.as_str().to_owned()))
        .push(", ")
        .arg(Value::text_or_null(comment.clone()))
        .push(", ")
        .arg(Value::Int(now_millis()))
        .push(")");
        match tx.execute(&sql).await {
            Err(DbError::Unique(_)) => {
                return Err(GovernanceError::Illegal(format!(
                    "{} already reviewed model version {version} in this round",
                    actor.subject
                )));
            }
            other => other?,
        };
        let mut data = json!({
            "registeredModelId": current.model.to_string(),
            "modelVersionId": version.to_string(),
            "stage": stage,
            "reviewer": actor.subject,
            "comment": comment,
        });
        let (event, detail) = match decision {
            Decision::Approve => (EventType::VersionApproved, format!("approve for {}", stage.as_str())),
            Decision::RequestChanges => {
                let target = State::ChangesRequested;
                let transition =
                    self.record_transition(&mut *tx, version, &current, target, &actor.subject, &comment, None).await?;
                data["transitionId"] = json!(transition.to_string());
                data["from"] = json!(current.state);
                data["to"] = json!(target);
                (EventType::VersionDenied, format!("request changes: {} -> {target}", current.state))
            }
        };
        let record = audit::Record {
            action: "lifecycle.review".to_owned(),
            entity: format!("model_version/{version}"),
            before: None,
            after: None,
            detail: Some(detail),
        };
        audit::append(&mut *tx, self.dialect(), record).await?;
        events::append(&mut *tx, self.dialect(), event, data).await?;
        tx.commit().await?;
        self.version(version).await
    }

    /// Writes a transition row (with the policy decision that allowed it, if policies decided) and the
    /// version's new state (a new round); retiring also archives the version for Kubeflow and logs it for
    /// the catalog. Returns the transition's id.
    #[allow(clippy::too_many_arguments)]
    async fn record_transition(
        &self,
        tx: &mut dyn Transaction,
        version: i64,
        current: &Current,
        target: State,
        actor: &str,
        comment: &Option<String>,
        decision: Option<Decided>,
    ) -> Result<i64, GovernanceError> {
        let now = now_millis();
        let (policy_version, policy_facts) = match decision {
            Some(decision) => (Some(decision.policy_version), Some(decision.facts.to_string())),
            None => (None, None),
        };
        let mut sql = self.sql();
        sql.push(
            "INSERT INTO version_transition (model_version_id, from_state, to_state, actor, comment, at, \
             policy_version, policy_facts) VALUES (",
        )
        .arg(Value::Int(version))
        .push(", ")
        .arg(Value::Text(current.state.as_str().to_owned()))
        .push(", ")
        .arg(Value::Text(target.as_str().to_owned()))
        .push(", ")
        .arg(Value::Text(actor.to_owned()))
        .push(", ")
        .arg(Value::text_or_null(comment.clone()))
        .push(", ")
        .arg(Value::Int(now))
        .push(", ")
        .arg(Value::text_or_null(policy_version))
        .push(", ")
        .arg(Value::text_or_null(policy_facts))
        .push(") RETURNING id");
        let row = tx.read(&sql, &[Col::Int]).await?.into_iter().next();
        let transition = row.and_then(|row| Fields::of(row).int()).unwrap_or_default();
        let submitted_by =
            if target == State::Submitted { Some(actor.to_owned()) } else { current.submitted_by.clone() };
        let mut sql = self.sql();
        sql.push("INSERT INTO version_lifecycle (model_version_id, state, submitted_by, round, updated_at) VALUES (")
            .arg(Value::Int(version))
            .push(", ")
            .arg(Value::Text(target.as_str().to_owned()))
            .push(", ")
            .arg(Value::text_or_null(submitted_by))
            .push(", ")
            .arg(Value::Int(transition))
            .push(", ")
            .arg(Value::Int(now))
            .push(
                ") ON CONFLICT (model_version_id) DO UPDATE SET state = excluded.state, submitted_by = \
                 excluded.submitted_by, round = excluded.round, updated_at = excluded.updated_at",
            );
        tx.execute(&sql).await?;
        if target == State::Retired {
            let mut sql = self.sql();
            sql.push("UPDATE model_version SET state = 'ARCHIVED', row_version = row_version + 1, update_time = ")
                .arg(Value::Int(now))
                .push(" WHERE id = ")
                .arg(Value::Int(version));
            tx.execute(&sql).await?;
            let entry = changes::registry_entry(tx, self.dialect(), ModelOf::Version(version)).await?;
            changes::append(tx, self.dialect(), &entry.into_iter().collect::<Vec<_>>()).await?;
        }
        Ok(transition)
    }

    /// The facts the policies decide on, read by `reader` (in a transition, its transaction).
    pub(super) async fn facts(
        &self,
        reader: &mut Reader<'_>,
        current: &Current,
        version: i64,
    ) -> Result<Facts, GovernanceError> {
        let governance = self.read_model(reader, current.model, false).await?;
        let mut sql = self.sql();
        sql.push("SELECT license FROM registered_model WHERE id = ").arg(Value::Int(current.model));
        let row = reader.read(&sql, &[Col::Text]).await?.into_iter().next().unwrap_or_default();
        let mut facts = Facts {
            registered_model: current.model,
            state: current.state,
            risk_tier: governance.risk_tier,
            group: governance.group,
            owners: governance.owners,
            tags: governance.tags,
            model_license: Fields::of(row).text(),
            ..Facts::default()
        };
        let mut sql = self.sql();
        sql.push(
            "SELECT name, properties FROM artifact WHERE artifact_type = 'model-artifact' AND model_version_id = ",
        )
        .arg(Value::Int(version))
        .push(" ORDER BY id");
        for row in reader.read(&sql, &[Col::Text, Col::Text]).await? {
            let mut fields = Fields::of(row);
            let name = fields.text().unwrap_or_default();
            let properties: Properties =
                fields.text().and_then(|json| serde_json::from_str(&json).ok()).unwrap_or_default();
            let property = |key: &str| properties.get(key).and_then(scalar_text);
            facts.artifacts.push(ArtifactFacts {
                name,
                sha256: property("sha256"),
                size: property("size"),
                license: property("license"),
            });
        }
        let mut sql = self.sql();
        sql.push("SELECT COUNT(DISTINCT reviewer) FROM version_review WHERE model_version_id = ")
            .arg(Value::Int(version))
            .push(" AND round = ")
            .arg(Value::Int(current.round))
            .push(" AND decision = 'approve'");
        let row = reader.read(&sql, &[Col::Int]).await?.into_iter().next().unwrap_or_default();
        facts.approvals = usize::try_from(Fields::of(row).int().unwrap_or(0)).unwrap_or(0);
        facts.evaluations = self.evaluation_facts(reader, version, facts.risk_tier).await?;
        facts.signatures = self.signature_facts(reader, version, &facts.artifacts).await?;
        Ok(facts)
    }

    /// What the policies in force (or `policies`, a draft) would decide about moving a version to
    /// `target` now, without effect.
    pub async fn policy_check(
        &self,
        version: i64,
        target: State,
        policies: Option<String>,
    ) -> Result<PolicyCheck, GovernanceError> {
        let mut reader = Reader::Db(&*self.db);
        let current = self.current(&mut reader, version, false).await?;
        let policies = match policies {
            Some(text) => std::sync::Arc::new(
                self.check_policies(&text).map_err(|error| GovernanceError::InvalidPolicies(error.problems))?,
            ),
            None => self.policies_in_force(&mut reader).await?,
        };
        let facts = self.facts(&mut reader, &current, version).await?;
        let actor = audit::current();
        let verdict = self.policy.engine.decide(&policies, &actor.subject, version, &Ask::Transition(target), &facts);
        Ok(PolicyCheck {
            from: current.state,
            to: target,
            legal: current.state.may_move_to(target),
            allowed: verdict.allowed,
            refusals: verdict.refusals,
            policy_version: verdict.policy_version,
            facts: facts.record(target),
        })
    }

    async fn refuse_if_aliased(&self, tx: &mut dyn Transaction, version: i64) -> Result<(), GovernanceError> {
        let mut sql = self.sql();
        sql.push("SELECT alias FROM model_alias WHERE model_version_id = ")
            .arg(Value::Int(version))
            .push(" ORDER BY alias");
        let aliases: Vec<String> =
            tx.read(&sql, &[Col::Text]).await?.into_iter().filter_map(|row| Fields::of(row).text()).collect();
        if aliases.is_empty() {
            return Ok(());
        }
        Err(GovernanceError::Illegal(format!(
            "model version {version} is still the target of the alias{} {}: move or remove {} first",
            if aliases.len() == 1 { "" } else { "es" },
            aliases.iter().map(|alias| format!("{alias:?}")).collect::<Vec<_>>().join(", "),
            if aliases.len() == 1 { "it" } else { "them" },
        )))
    }
}

/// The policy decision that allowed a transition, recorded with it.
struct Decided {
    policy_version: String,
    facts: serde_json::Value,
}

fn scalar_text(value: &MetaValue) -> Option<String> {
    match value {
        MetaValue::String(text) => Some(text.clone()),
        MetaValue::Int(number) => Some(number.to_string()),
        MetaValue::Double(number) => Some(number.to_string()),
        _ => None,
    }
}

fn illegal_move(version: i64, from: State, to: State) -> String {
    let next = from.successors();
    if next.is_empty() {
        return format!("model version {version} is {from}, which is final");
    }
    let next: Vec<_> = next.iter().map(|state| state.as_str()).collect();
    let hint = if to == State::ChangesRequested { " (changes are requested with a review)" } else { "" };
    format!("model version {version} is {from}: it may move to {} only, not {to}{hint}", next.join(" or "))
}

fn version_missing(version: i64) -> GovernanceError {
    GovernanceError::NotFound(format!("model version {version} not found"))
}
