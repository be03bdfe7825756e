//! `includedModels` / `excludedModels` with Kubeflow's semantics: `*` is the only wildcard (any run of
//! characters), matching is anchored and case-insensitive, a name must match some include pattern when any
//! is given, and an exclude match always wins. Empty or blank patterns are errors.

/// A compiled include/exclude filter.
#[derive(Debug, Clone, Default)]
pub struct NameFilter {
    included: Vec<Pattern>,
    excluded: Vec<Pattern>,
}

/// A pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid model name pattern {pattern:?}: patterns must not be empty")]
pub struct PatternError {
    pub pattern: String,
}

/// One `*` pattern, lowercased and split at its wildcards.
#[derive(Debug, Clone)]
struct Pattern {
    parts: Vec<String>,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, PatternError> {
        if text.trim().is_empty() {
            return Err(PatternError { pattern: text.to_owned() });
        }
        Ok(Pattern { parts: text.to_lowercase().split('*').map(str::to_owned).collect() })
    }

    /// Anchored glob match: the first part is a prefix, the last a suffix, the middle ones in order.
    fn matches(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        let (first, rest) = self.parts.split_first().expect("split yields at least one part");
        let Some(mut remaining) = name.strip_prefix(first.as_str()) else { return false };
        let Some((last, middle)) = rest.split_last() else { return remaining.is_empty() };
        for part in middle {
            match remaining.find(part.as_str()) {
                Some(position) => remaining = &remaining[position + part.len()..],
                None => return false,
            }
        }
        remaining.len() >= last.len() && remaining.ends_with(last.as_str())
    }
}

impl NameFilter {
    /// Compiles the two pattern lists.
    pub fn new(included: &[String], excluded: &[String]) -> Result<NameFilter, PatternError> {
        let compile =
            |patterns: &[String]| patterns.iter().map(|pattern| Pattern::parse(pattern)).collect::<Result<Vec<_>, _>>();
        Ok(NameFilter { included: compile(included)?, excluded: compile(excluded)? })
    }

    /// Whether a model named `name` passes the filter.
    pub fn allows(&self, name: &str) -> bool {
        let included = self.included.is_empty() || self.included.iter().any(|pattern| pattern.matches(name));
        included && !self.excluded.iter().any(|pattern| pattern.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(included: &[&str], excluded: &[&str]) -> NameFilter {
        let owned = |patterns: &[&str]| patterns.iter().map(|pattern| (*pattern).to_owned()).collect::<Vec<_>>();
        NameFilter::new(&owned(included), &owned(excluded)).expect("valid patterns")
    }

    #[test]
    fn kubeflow_semantics() {
        let models = filter(&["ibm-granite/*", "meta-llama/Llama-3*"], &["*-draft", "*GGUF*"]);
        assert!(models.allows("ibm-granite/granite-3.0-8b"));
        assert!(models.allows("IBM-Granite/Granite-3.0-8B"), "case-insensitive");
        assert!(models.allows("meta-llama/llama-3.1-8b"));
        assert!(!models.allows("meta-llama/Llama-2-7b"), "anchored");
        assert!(!models.allows("ibm-granite/granite-draft"), "exclude wins");
        assert!(!models.allows("ibm-granite/x-gguf-q4"), "exclude in the middle");
        assert!(!models.allows("mistralai/mistral-7b"), "must match an include");
        assert!(filter(&[], &["a*"]).allows("b"), "no includes means everything");
        assert!(filter(&["a.b"], &[]).allows("A.B") && !filter(&["a.b"], &[]).allows("axb"), "only * is special");
        assert!(filter(&["a*a"], &[]).allows("aa") && !filter(&["a*a"], &[]).allows("a"));
        assert!(NameFilter::new(&[" ".to_owned()], &[]).is_err());
    }
}
