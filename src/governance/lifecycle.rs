//! The version lifecycle as a pure state machine: the states, the legal moves between them, and how many
//! approvals a stage needs.
//!
//! ```text
//! draft → submitted → approved_staging → staging → approved_prod → production → deprecated → retired
//!           ↘ changes_requested ← (review) ↙            staging → deprecated; draft, changes_requested → retired
//!                  ↘ draft
//! ```
//!
//! `changes_requested` is entered only by a review that requests changes (of a submitted or staged
//! version); every other move is a transition. `retired` is final. A version without a recorded state is a
//! draft.

use serde::{Deserialize, Serialize};

/// A version's lifecycle state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    #[default]
    Draft,
    Submitted,
    ChangesRequested,
    ApprovedStaging,
    Staging,
    ApprovedProd,
    Production,
    Deprecated,
    Retired,
}

/// Every state, in lifecycle order.
pub const STATES: [State; 9] = [
    State::Draft,
    State::Submitted,
    State::ChangesRequested,
    State::ApprovedStaging,
    State::Staging,
    State::ApprovedProd,
    State::Production,
    State::Deprecated,
    State::Retired,
];

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::Submitted => "submitted",
            State::ChangesRequested => "changes_requested",
            State::ApprovedStaging => "approved_staging",
            State::Staging => "staging",
            State::ApprovedProd => "approved_prod",
            State::Production => "production",
            State::Deprecated => "deprecated",
            State::Retired => "retired",
        }
    }

    /// The states a transition may move a version in this state to.
    pub fn successors(self) -> &'static [State] {
        match self {
            State::Draft => &[State::Submitted, State::Retired],
            State::Submitted => &[State::ApprovedStaging],
            State::ChangesRequested => &[State::Draft, State::Retired],
            State::ApprovedStaging => &[State::Staging],
            State::Staging => &[State::ApprovedProd, State::Deprecated],
            State::ApprovedProd => &[State::Production],
            State::Production => &[State::Deprecated],
            State::Deprecated => &[State::Retired],
            State::Retired => &[],
        }
    }

    /// Whether a transition may move a version from this state to `target`.
    pub fn may_move_to(self, target: State) -> bool {
        self.successors().contains(&target)
    }

    /// The stage a review in this state approves (or sends back), if the state is under review.
    pub fn review_stage(self) -> Option<Stage> {
        match self {
            State::Submitted => Some(Stage::Staging),
            State::Staging => Some(Stage::Production),
            _ => None,
        }
    }

    /// Whether the version's artifacts are frozen: from submission on, what was reviewed is what ships.
    pub fn freezes_artifacts(self) -> bool {
        !matches!(self, State::Draft | State::ChangesRequested)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl std::str::FromStr for State {
    type Err = String;

    fn from_str(text: &str) -> Result<State, String> {
        STATES.into_iter().find(|state| state.as_str() == text).ok_or_else(|| {
            let known: Vec<_> = STATES.iter().map(|state| state.as_str()).collect();
            format!("unknown lifecycle state {text:?} (one of {})", known.join(", "))
        })
    }
}

/// What a review approves a version for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Staging,
    Production,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Staging => "staging",
            Stage::Production => "production",
        }
    }

    /// The transition this stage's approvals open.
    pub fn approved_state(self) -> State {
        match self {
            Stage::Staging => State::ApprovedStaging,
            Stage::Production => State::ApprovedProd,
        }
    }
}

/// A model's risk tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskTier {
    Low,
    #[default]
    Medium,
    High,
}

impl RiskTier {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskTier::Low => "low",
            RiskTier::Medium => "medium",
            RiskTier::High => "high",
        }
    }

    pub fn parse(text: &str) -> Option<RiskTier> {
        [RiskTier::Low, RiskTier::Medium, RiskTier::High].into_iter().find(|tier| tier.as_str() == text)
    }
}

/// A review's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    RequestChanges,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::RequestChanges => "request_changes",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_is_legal_and_retired_is_final() {
        let path = [
            State::Draft,
            State::Submitted,
            State::ApprovedStaging,
            State::Staging,
            State::ApprovedProd,
            State::Production,
            State::Deprecated,
            State::Retired,
        ];
        for pair in path.windows(2) {
            assert!(pair[0].may_move_to(pair[1]), "{} → {}", pair[0], pair[1]);
        }
        assert!(STATES.iter().all(|target| !State::Retired.may_move_to(*target)));
    }

    #[test]
    fn no_state_skips_its_approval_or_enters_changes_requested_by_transition() {
        for state in STATES {
            assert!(!state.may_move_to(State::ChangesRequested), "{state}");
            assert_eq!(state.may_move_to(State::Staging), state == State::ApprovedStaging, "{state}");
            assert_eq!(state.may_move_to(State::Production), state == State::ApprovedProd, "{state}");
            assert!(!state.may_move_to(state), "{state} to itself");
        }
    }

    #[test]
    fn states_round_trip_through_text_and_serde() {
        for state in STATES {
            assert_eq!(state.as_str().parse::<State>(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert!("live".parse::<State>().unwrap_err().contains("draft, submitted"));
    }
}
