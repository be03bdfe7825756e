//! Random sequences of transitions, reviews, risk-tier changes, evaluations and signatures by three
//! users, run against the governance store on SQLite and checked step by step against a reference model
//! of the default policies: illegal moves are refused, nobody reviews their own submission, a high-risk
//! model needs two approvers, production needs a verified signature and (for a high-risk model) a
//! passing evaluation, and each change that succeeds writes exactly one audit entry and one outbox event
//! (a refusal writes none).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use modelcat::audit::{self, Actor};
use modelcat::governance::lifecycle::{Decision, RiskTier, STATES, State};
use modelcat::governance::signatures::{self, Resource, TrustedKey};
use modelcat::governance::store::GovernanceStore;
use modelcat::governance::store::evaluations::{MetricValue, Submission};
use modelcat::governance::{GovernanceError, ModelPatch};
use modelcat::registry::schema::{MODEL_ARTIFACT, MODEL_VERSION, REGISTERED_MODEL};
use modelcat::registry::sql_store::SqlStore;
use modelcat::registry::{Attach, Draft, MetaValue, RegistryStore, Scalar};
use modelcat::store::Backend;
use modelcat::store::outbox as events;
use modelcat::webhooks::store::{SubscriptionDraft, WebhookStore};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use ring::signature::EcdsaKeyPair;

#[derive(Debug, Clone)]
enum Action {
    Move {
        user: usize,
        to: Target,
    },
    Review {
        user: usize,
        decision: Decision,
    },
    Tier(RiskTier),
    /// Records an evaluation whose one metric (required of high-risk models) passes or fails.
    Evaluate {
        passing: bool,
    },
    /// Records a signature over the version's artifact by the trusted key or by a stranger's.
    Sign {
        trusted: bool,
    },
}

/// Where a move goes: a named state, or the next state on the way to production (which the reference
/// resolves from its own table), so that sequences get past the first reviews.
#[derive(Debug, Clone, Copy)]
enum Target {
    Named(State),
    Next,
}

fn action() -> impl Strategy<Value = Action> {
    let user = 0..3usize;
    prop_oneof![
        2 => (user.clone(), 0..STATES.len()).prop_map(|(user, index)| Action::Move { user, to: Target::Named(STATES[index]) }),
        3 => user.clone().prop_map(|user| Action::Move { user, to: Target::Next }),
        3 => (user, prop::bool::weighted(0.8)).prop_map(|(user, approve)| Action::Review {
            user,
            decision: if approve { Decision::Approve } else { Decision::RequestChanges },
        }),
        1 => prop_oneof![Just(RiskTier::Low), Just(RiskTier::Medium), Just(RiskTier::High)].prop_map(Action::Tier),
        1 => prop::bool::weighted(0.7).prop_map(|passing| Action::Evaluate { passing }),
        1 => prop::bool::weighted(0.7).prop_map(|trusted| Action::Sign { trusted }),
    ]
}

/// What the rules say an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Illegal,
    Forbidden,
    Refused,
}

/// The rules, restated independently of the server's code.
#[derive(Debug, Default)]
struct Reference {
    state: Option<State>,
    submitter: Option<usize>,
    reviewed: BTreeSet<usize>,
    approvals: BTreeSet<usize>,
    tier: RiskTier,
    /// The latest evaluation passed (`None`: none recorded).
    evaluation: Option<bool>,
    signed: bool,
}

impl Reference {
    fn state(&self) -> State {
        self.state.unwrap_or(State::Draft)
    }

    fn successors(from: State) -> &'static [State] {
        use State::*;
        let moves: BTreeMap<&str, &'static [State]> = BTreeMap::from([
            ("draft", &[Submitted, Retired][..]),
            ("submitted", &[ApprovedStaging][..]),
            ("changes_requested", &[Draft, Retired][..]),
            ("approved_staging", &[Staging][..]),
            ("staging", &[ApprovedProd, Deprecated][..]),
            ("approved_prod", &[Production][..]),
            ("production", &[Deprecated][..]),
            ("deprecated", &[Retired][..]),
            ("retired", &[][..]),
        ]);
        moves[from.as_str()]
    }

    fn resolve(&self, target: Target) -> State {
        match target {
            Target::Named(state) => state,
            // Retired has no next state: moving it anywhere is illegal.
            Target::Next => Self::successors(self.state()).first().copied().unwrap_or(State::Draft),
        }
    }

    fn enter(&mut self, state: State) {
        self.state = Some(state);
        self.reviewed.clear();
        self.approvals.clear();
    }

    fn apply(&mut self, action: &Action) -> Outcome {
        match *action {
            Action::Tier(tier) => {
                self.tier = tier;
                Outcome::Done
            }
            Action::Move { user, to } => {
                let to = self.resolve(to);
                if !Self::successors(self.state()).contains(&to) {
                    return Outcome::Illegal;
                }
                let needed = if self.tier == RiskTier::High { 2 } else { 1 };
                if matches!(to, State::ApprovedStaging | State::ApprovedProd) && self.approvals.len() < needed {
                    return Outcome::Refused;
                }
                let evaluated = self.tier != RiskTier::High || self.evaluation == Some(true);
                if to == State::Production && !(evaluated && self.signed) {
                    return Outcome::Refused;
                }
                if to == State::Submitted {
                    self.submitter = Some(user);
                }
                self.enter(to);
                Outcome::Done
            }
            Action::Review { user, decision } => {
                if !matches!(self.state(), State::Submitted | State::Staging) {
                    return Outcome::Illegal;
                }
                if self.submitter == Some(user) {
                    return Outcome::Forbidden;
                }
                if self.reviewed.contains(&user) {
                    return Outcome::Illegal;
                }
                match decision {
                    Decision::Approve => {
                        self.reviewed.insert(user);
                        self.approvals.insert(user);
                    }
                    Decision::RequestChanges => self.enter(State::ChangesRequested),
                }
                Outcome::Done
            }
            Action::Evaluate { .. } | Action::Sign { .. } if self.state() == State::Retired => Outcome::Illegal,
            Action::Evaluate { passing } => {
                self.evaluation = Some(passing);
                Outcome::Done
            }
            Action::Sign { trusted } => {
                self.signed |= trusted;
                Outcome::Done
            }
        }
    }
}

fn outcome(result: Result<(), GovernanceError>) -> Result<Outcome, String> {
    match result {
        Ok(()) => Ok(Outcome::Done),
        Err(GovernanceError::Illegal(_)) => Ok(Outcome::Illegal),
        Err(GovernanceError::Forbidden(_)) => Ok(Outcome::Forbidden),
        Err(GovernanceError::Refused { .. }) => Ok(Outcome::Refused),
        Err(other) => Err(format!("unexpected error: {other}")),
    }
}

struct World {
    backend: Arc<dyn Backend>,
    registry: SqlStore,
    governance: GovernanceStore,
    trusted: EcdsaKeyPair,
    stranger: EcdsaKeyPair,
}

impl World {
    /// A fresh model with one version whose one model artifact is complete.
    async fn version(&self, case: usize) -> (i64, i64) {
        let text = |text: &str| Scalar::Text(text.to_owned());
        let draft =
            |values: Vec<(&'static str, Scalar)>| Draft { values: values.into_iter().collect(), properties: None };
        let model =
            self.registry.create(&REGISTERED_MODEL, draft(vec![("name", text(&format!("m{case}")))]), Attach::Nothing);
        let model = model.await.expect("model").id;
        let version = draft(vec![("name", text("v1")), ("registeredModelId", Scalar::Int(model))]);
        let version = self.registry.create(&MODEL_VERSION, version, Attach::Nothing).await.expect("version").id;
        let mut artifact = draft(vec![("name", text("weights")), ("uri", text("s3://w"))]);
        artifact.properties = Some(
            [
                ("sha256".to_owned(), MetaValue::String("0".repeat(64))),
                ("size".to_owned(), MetaValue::Int(7)),
                ("license".to_owned(), MetaValue::String("mit".to_owned())),
            ]
            .into_iter()
            .collect(),
        );
        self.registry.create(&MODEL_ARTIFACT, artifact, Attach::Parent(version)).await.expect("artifact");
        (model, version)
    }

    async fn written(&self) -> (i64, i64) {
        let audited = modelcat::store::audit::last(&*self.backend).await.expect("audit head").0;
        (audited, events::count(&*self.backend).await.expect("outbox"))
    }

    async fn run(&self, case: usize, actions: &[Action]) -> Result<(), String> {
        let (model, version) = self.version(case).await;
        let mut reference = Reference::default();
        let mut changes = 0;
        for (step, action) in actions.iter().enumerate() {
            let before = self.written().await;
            let user = match action {
                Action::Move { user, .. } | Action::Review { user, .. } => *user,
                Action::Tier(_) | Action::Evaluate { .. } | Action::Sign { .. } => 0,
            };
            let actor = Actor { subject: format!("user{user}"), request_id: None, authenticated: true };
            let result = audit::scope(actor, async {
                match *action {
                    Action::Move { to, .. } => {
                        self.governance.transition(version, reference.resolve(to), None).await.map(drop)
                    }
                    Action::Review { decision, .. } => self.governance.review(version, decision, None).await.map(drop),
                    Action::Tier(tier) => {
                        let patch = ModelPatch { risk_tier: Some(tier), ..ModelPatch::default() };
                        self.governance.update_model(model, patch).await.map(drop)
                    }
                    Action::Evaluate { passing } => {
                        let submission = Submission {
                            suite: "quality".to_owned(),
                            dataset_digest: format!("sha256:{}", "d".repeat(64)),
                            dataset_name: None,
                            results: vec![MetricValue {
                                metric: "accuracy".to_owned(),
                                value: if passing { 0.95 } else { 0.5 },
                            }],
                        };
                        self.governance.record_evaluation(version, submission).await.map(drop)
                    }
                    Action::Sign { trusted } => {
                        let key = if trusted { &self.trusted } else { &self.stranger };
                        let weights = [Resource { name: "weights".to_owned(), digest: "0".repeat(64) }];
                        self.governance.record_signature(version, &signatures::sign(key, &weights)).await.map(drop)
                    }
                }
            })
            .await;
            let moved_before = reference.state();
            let expected = reference.apply(action);
            let actual = outcome(result)?;
            if actual != expected {
                return Err(format!(
                    "step {step} {action:?} from {moved_before}: expected {expected:?}, got {actual:?}"
                ));
            }
            let after = self.written().await;
            let wrote = if actual == Outcome::Done { 1 } else { 0 };
            if after != (before.0 + wrote, before.1 + wrote) {
                return Err(format!("step {step} {action:?}: audit and outbox went {before:?} -> {after:?}"));
            }
            if reference.state() != moved_before {
                changes += 1;
            }
            let stored = self.governance.state(version).await.map_err(|error| error.to_string())?;
            if stored != reference.state() {
                return Err(format!("step {step} {action:?}: stored {stored}, expected {}", reference.state()));
            }
        }
        let history = self.governance.transitions(version).await.map_err(|error| error.to_string())?;
        if history.len() != changes {
            return Err(format!("{} transitions recorded for {changes} state changes", history.len()));
        }
        Ok(())
    }
}

#[test]
fn random_sequences_follow_the_rules() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let directory = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", directory.path().join("governance.db").display());
    let backend = runtime.block_on(modelcat::store::connect(&url)).expect("store");
    // A catch-all subscription, so that every change writes its event.
    let webhooks = WebhookStore::new(backend.clone());
    let everything = SubscriptionDraft { url: Some("https://hooks.example.invalid/".to_owned()), ..Default::default() };
    runtime.block_on(webhooks.create(everything)).expect("a subscription");
    let (trusted, pem) = signatures::generate_key();
    let keys = vec![TrustedKey::from_pem("release", &pem).expect("a P-256 key")];
    let governance = GovernanceStore::new(backend.clone(), keys);
    let suite = serde_json::json!({"metrics": [{"name": "accuracy", "category": "task",
        "direction": "higher_is_better", "thresholds": {"high": 0.9}}]});
    let suite = serde_json::from_value(suite).expect("a suite");
    runtime.block_on(governance.put_suite("quality", suite)).expect("suite stored");
    let stranger = signatures::generate_key().0;
    let world = World { registry: SqlStore::new(backend.clone()), governance, backend, trusted, stranger };
    let mut runner = TestRunner::new(Config { cases: 96, ..Config::default() });
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&prop::collection::vec(action(), 1..40), |actions| {
            let number = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            runtime.block_on(world.run(number, &actions)).map_err(TestCaseError::fail)
        })
        .expect("every sequence follows the rules");
    // The sequences reached every state (the generator is not stuck in drafts).
    let reached = runtime.block_on(async {
        let mut sql = modelcat::store::sql::Sql::new(world.backend.dialect());
        sql.push("SELECT DISTINCT to_state FROM version_transition");
        world.backend.read(&sql, &[modelcat::store::sql::Col::Text]).await.expect("read").len()
    });
    assert!(reached >= 7, "the sequences reached only {reached} states");
}
