//! The snapshot's search, filters and options on a few servers.

use std::sync::Arc;

use modelcat_sources::mcp::{McpServer, SecurityIndicators};

use super::filter::like_matcher;
use super::*;

fn server(name: &str, provider: &str, created: i64) -> Entry {
    let server = McpServer {
        name: name.to_owned(),
        provider: Some(provider.to_owned()),
        description: Some(format!("The {name} server")),
        tags: vec!["a".into(), "b".into()],
        security_indicators: Some(SecurityIndicators { verified_source: Some(name != "c"), ..Default::default() }),
        ..McpServer::default()
    };
    Entry::new("s", Arc::new(server), created, created)
}

fn servers() -> McpServers {
    McpServers::new(vec![server("b", "Zed", 3), server("A", "Acme", 2), server("c", "Acme", 1)])
}

fn names(servers: &McpServers, query: &Query<'_>) -> Vec<String> {
    servers.search(query).unwrap().servers.iter().map(|entry| entry.server.name.clone()).collect()
}

#[test]
fn like_matches_sql_patterns() {
    assert!(like_matcher("%man%", false).is_match("file-manager"));
    assert!(like_matcher("f_le%", false).is_match("file"));
    assert!(!like_matcher("f_le", false).is_match("files"));
    assert!(like_matcher("%a%b%c", false).is_match("xxaxxbxxc"));
    assert!(!like_matcher("%a%b%c", false).is_match("xxaxxcxxb"));
    assert!(like_matcher("FILE%", true).is_match("file-manager"));
    assert!(!like_matcher("FILE%", false).is_match("file-manager"));
    assert!(like_matcher("%", false).is_match(""));
}

#[test]
fn search_orders_pages_and_filters() {
    let servers = servers();
    let all = Query { limit: 10, ..Query::default() };
    assert_eq!(names(&servers, &all), ["A", "b", "c"], "names ignore case");
    let by_time = Query { order: Order::CreateTime, limit: 10, ..Query::default() };
    assert_eq!(names(&servers, &by_time), ["c", "A", "b"]);
    let page = servers.search(&Query { offset: 1, limit: 1, ..Query::default() }).unwrap();
    assert_eq!((page.servers.len(), page.more, page.total), (1, true, 3));
    let expr = crate::filter::parse("provider = 'Acme' AND verifiedSource = true").unwrap().unwrap();
    assert_eq!(names(&servers, &Query { filter: Some(&expr), limit: 10, ..Query::default() }), ["A"]);
    assert_eq!(names(&servers, &Query { q: Some("THE B"), limit: 10, ..Query::default() }), ["b"]);
    let wrong = crate::filter::parse("provider > 3").unwrap().unwrap();
    assert!(servers.search(&Query { filter: Some(&wrong), limit: 10, ..Query::default() }).is_err());
    let id = servers.entries()[0].id.to_string();
    assert_eq!(servers.get(&id).map(|entry| entry.server.name.as_str()), Some("A"));
    assert!(servers.get("nope").is_none());
}

#[test]
fn options_count_values_and_skip_empty_ones() {
    let options = servers().filter_options().clone();
    assert_eq!(options["provider"], PropertyOptions::Strings(vec![("Acme".into(), 2), ("Zed".into(), 1)]));
    assert_eq!(options["tags"], PropertyOptions::Strings(vec![("a".into(), 3), ("b".into(), 3)]));
    assert!(!options.contains_key("license"));
}
