//! A model's README as safe HTML: GitHub-flavoured markdown, front matter apart, links rewritten.
//!
//! Contract:
//! - The YAML front matter (`---` … `---` at the top) is not rendered as text: its top-level keys come back
//!   as rows for a table. Front matter that does not parse is shown as the text it is.
//! - Markdown is rendered with GitHub's extensions (tables, strikethrough, task lists, footnotes, alerts)
//!   and then sanitized by `ammonia`'s allow-list: no scripts, styles, event handlers, forms or frames;
//!   only `http`, `https` and `mailto` URLs; every link gets `rel="noopener noreferrer nofollow"`.
//! - Relative URLs (links and images) are resolved against `base` when one is given (a mirrored Hub
//!   repository's files); without a base, relative links are dropped and the text kept.

use std::borrow::Cow;

use pulldown_cmark::{Options, Parser, html};

/// A rendered README.
#[derive(Debug, Default)]
pub struct Rendered {
    /// The front matter's top-level keys and their values as text.
    pub front_matter: Vec<(String, String)>,
    /// Sanitized HTML.
    pub html: String,
}

/// Renders `markdown`; relative URLs resolve against `base` (a path ending in `/`), when given.
pub fn render(markdown: &str, base: Option<&str>) -> Rendered {
    let (front_matter, body) = split_front_matter(markdown);
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_GFM;
    let mut unsafe_html = String::with_capacity(body.len() * 3 / 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(body, options));
    let mut builder = ammonia::Builder::default();
    builder.url_schemes(["http", "https", "mailto"].into_iter().collect());
    builder.add_tag_attributes("input", ["type", "checked", "disabled"]);
    builder.add_tags(["input"]);
    builder.attribute_filter(|element, attribute, value| match (element, attribute) {
        // Task list checkboxes only, and never editable.
        ("input", "type") => (value == "checkbox").then_some(Cow::Borrowed(value)),
        _ => Some(Cow::Borrowed(value)),
    });
    builder.url_relative(ammonia::UrlRelative::Custom(Box::new(Relative(base.map(str::to_owned)))));
    Rendered { front_matter, html: builder.clean(&unsafe_html).to_string() }
}

/// Relative URLs against a base: anchors stay, others resolve inside the base, or go without one.
struct Relative(Option<String>);

impl<'a> ammonia::UrlRelativeEvaluate<'a> for Relative {
    fn evaluate<'url>(&self, url: &'url str) -> Option<Cow<'url, str>> {
        if url.starts_with('#') {
            return Some(Cow::Borrowed(url));
        }
        let base = self.0.as_ref().filter(|_| !url.starts_with("//"))?;
        let path = url.trim_start_matches("./").trim_start_matches('/');
        Some(Cow::Owned(format!("{base}{path}")))
    }
}

/// The front matter's keys and values, and the markdown after it.
fn split_front_matter(markdown: &str) -> (Vec<(String, String)>, &str) {
    let text = markdown.strip_prefix('\u{feff}').unwrap_or(markdown);
    let Some(rest) = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n")) else {
        return (Vec::new(), text);
    };
    let Some(end) = rest.find("\n---").filter(|end| {
        let after = &rest[end + 4..];
        after.is_empty() || after.starts_with('\n') || after.starts_with("\r\n")
    }) else {
        return (Vec::new(), text);
    };
    // A YAML mapping keeps the author's order.
    let Ok(serde_norway::Value::Mapping(map)) = serde_norway::from_str::<serde_norway::Value>(&rest[..end]) else {
        return (Vec::new(), text);
    };
    let rows = map.iter().map(|(key, value)| (plain(key), plain(value))).collect();
    (rows, rest[end + 4..].trim_start_matches(['\r', '\n']))
}

/// A front matter value as text: scalars as they are, lists of scalars joined, the rest as compact JSON.
fn plain(value: &serde_norway::Value) -> String {
    use serde_norway::Value;
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::Sequence(items) if items.iter().all(|item| !item.is_mapping() && !item.is_sequence()) => {
            items.iter().map(plain).collect::<Vec<_>>().join(", ")
        }
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_markdown_comes_out_harmless() {
        let hostile = "# Title\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n\
            [click](javascript:alert(3)) <a href=\"data:text/html,hi\">data</a>\n\n\
            <iframe src=\"https://evil.example\"></iframe><style>body{display:none}</style>\n\n\
            <form action=\"https://evil.example\"><input name=x></form>\n\n<b onclick=\"steal()\">bold</b>\n";
        let html = render(hostile, None).html;
        for banned in
            ["<script", "onerror", "javascript:", "data:text", "<iframe", "<style", "<form", "onclick", "alert("]
        {
            assert!(!html.contains(banned), "{banned} survived: {html}");
        }
        assert!(html.contains("<h1>Title</h1>") && html.contains("<b>bold</b>"), "{html}");
    }

    #[test]
    fn github_flavour_renders() {
        let html = render("| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~\n\n- [x] done\n", None).html;
        assert!(html.contains("<table>") && html.contains("<td>1</td>"), "{html}");
        assert!(html.contains("<del>old</del>"), "{html}");
        assert!(html.contains("type=\"checkbox\"") && html.contains("checked"), "{html}");
    }

    #[test]
    fn front_matter_becomes_rows() {
        let rendered = render("---\nlicense: apache-2.0\ntags: [a, b]\nmodel-index: {x: 1}\n---\n# Model\n", None);
        assert_eq!(
            rendered.front_matter,
            vec![
                ("license".to_owned(), "apache-2.0".to_owned()),
                ("tags".to_owned(), "a, b".to_owned()),
                ("model-index".to_owned(), "{\"x\":1}".to_owned())
            ]
        );
        assert!(rendered.html.starts_with("<h1>Model</h1>"), "{}", rendered.html);
        // Not front matter: a rule at the top with nothing closing it.
        assert!(render("---\ntext\n", None).front_matter.is_empty());
    }

    #[test]
    fn relative_links_resolve_against_the_base_or_go() {
        let markdown = "[cfg](config.json) ![img](./img/a.png) [abs](https://example.com/x) [top](#usage)";
        let based = render(markdown, Some("/org/m/resolve/main/")).html;
        assert!(based.contains("href=\"/org/m/resolve/main/config.json\""), "{based}");
        assert!(based.contains("src=\"/org/m/resolve/main/img/a.png\""), "{based}");
        assert!(based.contains("href=\"https://example.com/x\"") && based.contains("href=\"#usage\""), "{based}");
        let unbased = render(markdown, None).html;
        assert!(!unbased.contains("config.json\"") && unbased.contains("cfg"), "{unbased}");
    }
}
