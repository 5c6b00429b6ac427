use super::*;
use std::path::Path;

/// Every file of `web/<app>/dist` is in the app's table with the same bytes, and nothing else:
/// a `vite build` without `gen-assets.mjs` (or a stale table) fails here.
fn table_matches_dist(app: &str, table: &[(&str, &str, &[u8])]) {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("web")
        .join(app)
        .join("dist");
    let mut files = Vec::new();
    let mut dirs = vec![dist.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert_eq!(
        files.len(),
        table.len(),
        "{app}: dist/ and the table differ"
    );
    for f in files {
        let rel = format!("/{}", f.strip_prefix(&dist).unwrap().display());
        let (_, _, body) = table
            .iter()
            .find(|(p, _, _)| *p == rel)
            .unwrap_or_else(|| panic!("{app}: {rel} is not in the table"));
        assert_eq!(*body, std::fs::read(&f).unwrap().as_slice(), "{app}: {rel}");
    }
}

#[test]
fn the_tables_match_the_built_files() {
    table_matches_dist("chat", chat_assets::ASSETS);
    table_matches_dist("dashboard", dashboard_assets::ASSETS);
}

#[test]
fn chat_paths_map_to_the_page_and_its_files() {
    let (t, body) = chat_asset("/chat").unwrap();
    assert_eq!(t, "text/html; charset=utf-8");
    assert!(std::str::from_utf8(body).unwrap().contains("ringmq chat"));
    assert_eq!(chat_asset("/chat/").unwrap().1, body);
    assert_eq!(chat_asset("/chat/index.html").unwrap().1, body);
    assert_eq!(chat_asset("/chat/room/lobby").unwrap().1, body);
    for (p, _, b) in chat_assets::ASSETS {
        assert_eq!(chat_asset(&format!("/chat{p}")).unwrap().1, *b);
    }
    assert_eq!(chat_asset("/chat/assets/missing.js"), None);
    assert_eq!(chat_asset("/chatroom"), None);
    assert_eq!(chat_asset("/"), None);
    assert!(is_chat_path("/chat") && is_chat_path("/chat/x") && !is_chat_path("/chatx"));
}

#[test]
fn dashboard_routes_fall_back_to_index_only_without_a_dot() {
    let index = dashboard_asset("/").unwrap();
    assert_eq!(index.0, "text/html; charset=utf-8");
    assert_eq!(dashboard_asset("/index.html"), Some(index));
    assert_eq!(dashboard_asset("/clients"), Some(index));
    assert_eq!(dashboard_asset("/clients?like=a"), Some(index));
    assert_eq!(dashboard_asset("/favicon.ico"), None);
    assert_eq!(dashboard_asset("/assets/nope.js"), None);
    for (p, _, b) in dashboard_assets::ASSETS {
        assert_eq!(dashboard_asset(p).unwrap().1, *b);
    }
}

#[test]
fn hashed_files_are_cached_forever_and_pages_revalidated() {
    assert_eq!(cache_control("/chat/index.html"), "no-cache");
    assert!(cache_control("/chat/assets/index-abc.js").contains("immutable"));
}
