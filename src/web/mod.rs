//! The browser apps that ship inside the binary: the chat demo (served under `/chat` by
//! WebSocket listeners, see [`crate::transport::ws::handshake`]) and the admin dashboard (served
//! by the HTTP server under `/`). Their sources are the npm projects in `web/`; Vite's built
//! output is committed and embedded with `include_bytes!` through the tables that
//! `web/gen-assets.mjs` writes (`chat_assets.rs`, `dashboard_assets.rs`), so building and
//! running the broker needs no Node.js and nothing is fetched at run time.
//!
//! Owns: mapping a request path to (content type, body). Never: touches the file system, or
//! allocates: every answer is a `&'static` slice of the binary.

mod chat_assets;
mod dashboard_assets;

/// An embedded file: (content type, body).
pub type Asset = (&'static str, &'static [u8]);

fn find(table: &'static [(&str, &str, &[u8])], path: &str) -> Option<Asset> {
    table
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|&(_, t, b)| (t, b))
}

/// An app's file for `path` (relative to the app's root, starting with `/`): `/` is
/// `index.html`; a path without a dot that names no file is a client-side route and gets
/// `index.html` too; anything else unknown is `None` (404).
fn lookup(table: &'static [(&str, &str, &[u8])], path: &str) -> Option<Asset> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.is_empty() || path == "/" {
        return find(table, "/index.html");
    }
    find(table, path).or_else(|| {
        let last = path.rsplit('/').next().unwrap_or_default();
        (!last.contains('.'))
            .then(|| find(table, "/index.html"))
            .flatten()
    })
}

/// The dashboard's file for a GET `path` on the HTTP listener (`/`, `/index.html`,
/// `/assets/index-abc.js`, or a client-side route such as `/clients`).
pub fn dashboard_asset(path: &str) -> Option<Asset> {
    lookup(dashboard_assets::ASSETS, path)
}

/// The chat demo's file for a GET `path` under `/chat` (`/chat`, `/chat/`,
/// `/chat/assets/index-abc.js`); `None` for anything else.
pub fn chat_asset(path: &str) -> Option<Asset> {
    let rest = path.strip_prefix("/chat")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None; // `/chatroom` is not ours
    }
    lookup(chat_assets::ASSETS, rest)
}

/// Whether a request path belongs to the chat demo (served as a page, or 404 when unknown).
pub fn is_chat_path(path: &str) -> bool {
    path == "/chat" || path.starts_with("/chat/")
}

/// Cache policy for an app's file: Vite's hashed files under `/assets/` never change; the rest
/// (index.html) is revalidated, so a new binary's page is picked up at once.
pub fn cache_control(path: &str) -> &'static str {
    if path.contains("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

#[cfg(test)]
mod tests;
