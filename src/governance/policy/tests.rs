use super::*;
use crate::governance::lifecycle::RiskTier;

fn complete(name: &str) -> ArtifactFacts {
    ArtifactFacts {
        name: name.to_owned(),
        sha256: Some("a".repeat(64)),
        size: Some("10".to_owned()),
        license: Some("apache-2.0".to_owned()),
    }
}

fn rules(verdict: &Verdict) -> Vec<&str> {
    verdict.refusals.iter().map(|refusal| refusal.rule.as_str()).collect()
}

#[test]
fn submission_lists_every_missing_fact_under_its_policy() {
    let engine = Engine::new();
    let policies = engine.builtin();
    assert!(policies.version.starts_with("builtin-") && policies.version.len() == 20, "{}", policies.version);
    let facts = Facts {
        artifacts: vec![
            complete("weights"),
            ArtifactFacts { name: "tokenizer".to_owned(), sha256: Some("xyz".to_owned()), ..Default::default() },
        ],
        ..Default::default()
    };
    let verdict = engine.decide(&policies, "sam", 1, &Ask::Transition(State::Submitted), &facts);
    assert!(!verdict.allowed);
    assert_eq!(rules(&verdict), ["artifacts-complete"]);
    assert_eq!(
        verdict.refusals[0].details,
        [
            "model artifact \"tokenizer\" has a sha256 that is not 64 hex digits",
            "model artifact \"tokenizer\" has no size property",
            "model artifact \"tokenizer\" has no license, and neither has the registered model",
        ]
    );
    let licensed = Facts { model_license: Some("mit".to_owned()), ..facts };
    let verdict = engine.decide(&policies, "sam", 1, &Ask::Transition(State::Submitted), &licensed);
    assert_eq!(verdict.refusals[0].details.len(), 2, "the model's license covers its artifacts");
    let empty = engine.decide(&policies, "sam", 1, &Ask::Transition(State::Submitted), &Facts::default());
    assert_eq!(empty.refusals[0].details, ["the version has no model artifact"]);
    let whole = Facts { artifacts: vec![complete("weights")], ..Default::default() };
    assert!(engine.decide(&policies, "sam", 1, &Ask::Transition(State::Submitted), &whole).allowed);
}

#[test]
fn approvals_follow_the_risk_tier() {
    let engine = Engine::new();
    let policies = engine.builtin();
    let mut facts = Facts { risk_tier: RiskTier::High, approvals: 1, ..Default::default() };
    let verdict = engine.decide(&policies, "ann", 1, &Ask::Transition(State::ApprovedProd), &facts);
    assert_eq!(rules(&verdict), ["high-risk-two-approvers"]);
    assert_eq!(verdict.refusals[0].details, ["1 distinct approval in this review round"]);
    facts.approvals = 0;
    let verdict = engine.decide(&policies, "ann", 1, &Ask::Transition(State::ApprovedProd), &facts);
    assert_eq!(rules(&verdict), ["four-eyes", "high-risk-two-approvers"], "every deciding policy is named");
    assert_eq!(engine.approvals_needed(&policies, 1, State::ApprovedProd, &facts), Some(2));
    facts.risk_tier = RiskTier::Low;
    assert_eq!(engine.approvals_needed(&policies, 1, State::ApprovedStaging, &facts), Some(1));
    assert!(
        engine.decide(&policies, "ann", 1, &Ask::Transition(State::Staging), &Facts::default()).allowed,
        "no policy on staging"
    );
}

#[test]
fn production_needs_passing_evaluations_and_a_verified_signature() {
    let engine = Engine::new();
    let policies = engine.builtin();
    let mut facts = Facts {
        evaluations: EvaluationFacts {
            required: 3,
            missing: vec!["safety/toxicity".to_owned()],
            failed: vec!["core/accuracy is 0.5, below the minimum 0.8 for a medium-risk model".to_owned()],
        },
        ..Default::default()
    };
    let verdict = engine.decide(&policies, "ann", 1, &Ask::Transition(State::Production), &facts);
    assert_eq!(rules(&verdict), ["evaluations-passing", "signature-verified"]);
    assert_eq!(
        verdict.refusals[0].details,
        ["no result for safety/toxicity", "core/accuracy is 0.5, below the minimum 0.8 for a medium-risk model"]
    );
    assert_eq!(verdict.refusals[1].details, ["the version has no signature bundle"]);
    facts.evaluations = EvaluationFacts { required: 3, ..Default::default() };
    facts.signatures.verified = 1;
    assert!(engine.decide(&policies, "ann", 1, &Ask::Transition(State::Production), &facts).allowed);
}

#[test]
fn custom_policies_see_the_model_and_the_caller() {
    let engine = Engine::new();
    let text = r#"
        @id("allow") permit (principal, action, resource);
        @id("finance-three") @reason("finance models need three approvers") @explain("distinct_approvals")
        forbid (principal, action == Action::"transition", resource)
        when { resource.group == "finance" && context.to == "approved_prod" && context.distinct_approvals < 3 };
        @id("bot-never-retires") @reason("the release bot may not retire a version")
        forbid (principal == User::"bot", action == Action::"transition", resource) when { context.to == "retired" };
    "#;
    let policies = engine.compile("v1".to_owned(), text).unwrap();
    let finance = Facts { group: Some("finance".to_owned()), approvals: 2, ..Default::default() };
    let verdict = engine.decide(&policies, "ann", 1, &Ask::Transition(State::ApprovedProd), &finance);
    assert_eq!((rules(&verdict), verdict.policy_version.as_str()), (vec!["finance-three"], "v1"));
    assert_eq!(engine.approvals_needed(&policies, 1, State::ApprovedProd, &finance), Some(3));
    assert!(!engine.decide(&policies, "bot", 1, &Ask::Transition(State::Retired), &finance).allowed);
    assert!(engine.decide(&policies, "ann", 1, &Ask::Transition(State::Retired), &finance).allowed);
    let none = engine.compile("v2".to_owned(), "").unwrap();
    let verdict = engine.decide(&none, "ann", 1, &Ask::Transition(State::Staging), &finance);
    assert_eq!(rules(&verdict), ["default-deny"], "nothing permits: fail closed");
}

#[test]
fn bad_policies_are_refused_with_every_problem() {
    let engine = Engine::new();
    let problems = |text: &str| engine.compile("draft".to_owned(), text).unwrap_err().problems;
    assert!(problems("permit (principal, action, resource")[0].starts_with("syntax:"));
    let unknown = problems(r#"@id("x") permit (principal, action, resource) when { context.approvals > 1 };"#);
    assert!(unknown[0].contains("approvals"), "{unknown:?}");
    let typed = problems(r#"@id("x") permit (principal, action, resource) when { resource.risk_tier > 1 };"#);
    assert!(!typed.is_empty(), "a type error is refused");
    let several = problems(
        r#"permit (principal, action, resource);
           @id("f") forbid (principal, action, resource);
           @id("g") @reason("r") @explain("nothing") forbid (principal, action, resource);"#,
    );
    assert_eq!(
        several,
        [
            "policy 1 has no @id annotation",
            "forbid policy \"f\" has no @reason annotation",
            "policy \"g\" explains with \"nothing\", which is not a context attribute",
        ]
    );
    let twice =
        problems(r#"@id("a") permit (principal, action, resource); @id("a") permit (principal, action, resource);"#);
    assert!(twice[0].contains("\"a\""), "{twice:?}");
    assert!(problems(r#"@id("t") permit (principal == ?principal, action, resource);"#)[0].contains("templates"));
}

#[test]
fn serving_takes_released_versions_and_staging_canaries() {
    let engine = Engine::new();
    let policies = engine.builtin();
    let deploy = |weight| Ask::Deploy { environment: "prod-eu".to_owned(), weight };
    let at = |state| Facts { state, ..Default::default() };
    assert!(engine.decide(&policies, "ann", 1, &deploy(100), &at(State::Production)).allowed);
    assert!(engine.decide(&policies, "ann", 1, &deploy(10), &at(State::Staging)).allowed);
    let greedy = engine.decide(&policies, "ann", 1, &deploy(11), &at(State::Staging));
    assert_eq!(rules(&greedy), ["serve-released-versions"]);
    assert_eq!(greedy.refusals[0].details, ["the version is staging and would take 11% of prod-eu"]);
    assert!(!engine.decide(&policies, "ann", 1, &deploy(50), &at(State::Retired)).allowed);
    assert!(engine.decide(&policies, "ann", 1, &deploy(0), &at(State::Retired)).allowed, "no traffic, no rule");
}

#[test]
fn the_explained_attributes_are_the_context_counts() {
    let mut attributes: Vec<_> = Facts::default().counts().into_iter().map(|(name, _)| name).collect();
    attributes.push("weight");
    assert_eq!(attributes, Facts::EXPLAINED);
}
