//! The dashboard's embedded assets. Placeholder made by the admin branch so the HTTP server
//! compiles: the web branch owns this module and its version (the built dashboard) replaces
//! this one at merge.

/// (content type, body) of a dashboard path; none in this build.
pub fn dashboard_asset(_path: &str) -> Option<(&'static str, &'static [u8])> {
    None
}
