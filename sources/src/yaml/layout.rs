//! Where each model's text is in a catalog file, found without parsing YAML, so models can be parsed a
//! group at a time (in parallel, holding one group's parse at once) and an edit parses again only the
//! models whose text changed.
//!
//! [`Layout::of`] answers only for the usual shape, where `models:` is a top-level key whose value is a
//! block sequence (`- …` items), and returns `None` for anything else (a flow sequence, tabs in
//! indentation, an unexpected line). The layout is a hint, never the meaning: callers parse every piece
//! with the YAML parser and parse the whole file instead when any piece fails. A piece that parses alone
//! means what it means within the file: every line of an item is indented deeper than its `-`, and YAML
//! ends any multi-line scalar or block at a line that is not, so a split can only cut through a
//! construct that the piece before it then leaves unterminated (an error, so the whole file is parsed).
//! Aliases to anchors in another piece fail the same way.

use std::ops::Range;

/// A catalog file cut into its models and the rest.
#[derive(Debug, PartialEq)]
pub struct Layout {
    /// The file without its models: `models: []` stands in their place.
    pub skeleton: String,
    /// Each model's bytes, in order: from its `-` line to the next one's (comments and blank lines after
    /// a model belong to it).
    pub items: Vec<Range<usize>>,
}

impl Layout {
    pub fn of(text: &str) -> Option<Layout> {
        let mut offset = 0;
        let mut lines = text.split_inclusive('\n').map(|line| {
            offset += line.len();
            (offset - line.len(), line)
        });
        // The top-level `models:` key, with nothing but a comment after it.
        let models_line = loop {
            let (start, line) = lines.next()?;
            if let Some(rest) = line.strip_prefix("models:") {
                let rest = rest.trim();
                if rest.is_empty() || rest.starts_with('#') {
                    break start..start + line.len();
                }
                return None;
            }
        };
        let mut items: Vec<Range<usize>> = Vec::new();
        let mut indent = None;
        let mut end = text.len();
        for (start, line) in lines {
            let content = line.trim_end_matches(['\n', '\r']);
            let trimmed = content.trim_start_matches(' ');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if trimmed.starts_with('\t') {
                return None;
            }
            let column = content.len() - trimmed.len();
            let dash = trimmed == "-" || trimmed.starts_with("- ");
            match indent {
                None if dash => indent = Some(column),
                // `models:` followed by something other than a block sequence.
                None => return None,
                Some(n) if column > n => continue,
                Some(n) if column == n && dash => {}
                // The next top-level key (or the end of an indented sequence).
                Some(n) if column < n || column == 0 => {
                    end = start;
                    break;
                }
                Some(_) => return None,
            }
            if let Some(last) = items.last_mut() {
                last.end = start;
            }
            items.push(start..text.len());
        }
        let last = items.last_mut()?;
        last.end = end;
        let skeleton = format!("{}models: []\n{}", &text[..models_line.start], &text[end..]);
        Some(Layout { skeleton, items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Option<(String, Vec<&str>)> {
        let layout = Layout::of(text)?;
        Some((layout.skeleton, layout.items.into_iter().map(|item| &text[item]).collect()))
    }

    #[test]
    fn cuts_indented_and_flush_sequences_into_items() {
        let text = "source: S # c\nmodels: # all\n  - name: a\n    readme: |\n      x\n\n      - y\n  # note\n  - {name: b}\nother: 1\n";
        let (skeleton, items) = pieces(text).unwrap();
        assert_eq!(skeleton, "source: S # c\nmodels: []\nother: 1\n");
        assert_eq!(items, ["  - name: a\n    readme: |\n      x\n\n      - y\n  # note\n", "  - {name: b}\n"]);

        let (skeleton, items) = pieces("---\nmodels:\n- name: a\n  tasks: [x]\n-\n  name: b\nsource: S").unwrap();
        assert_eq!(skeleton, "---\nmodels: []\nsource: S");
        assert_eq!(items, ["- name: a\n  tasks: [x]\n", "-\n  name: b\n"]);
    }

    #[test]
    fn declines_shapes_it_does_not_know() {
        assert_eq!(pieces("models: [{name: a}]"), None);
        assert_eq!(pieces("models:\n  name: a\n"), None);
        assert_eq!(pieces("source: S\n"), None);
        assert_eq!(pieces("models:\n"), None);
        assert_eq!(pieces("models:\n  - name: a\n  \tdescription: b\n"), None);
        assert_eq!(pieces("models:\n  - name: a\n  description: b\n"), None);
    }
}
