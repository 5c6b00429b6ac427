//! `/api/v1/users` (the MQTT users of the `password_file`) and `/api/v1/acl`.
//!
//! A user edit is what `ringmq passwd` does (the same line edit, argon2id, atomic rewrite:
//! [`crate::auth::passwd_cmd`]) followed by the reload SIGHUP does, asked of the control thread,
//! so the shards verify against the new file at once. Owns: serializing edits (one at a time,
//! so two concurrent requests cannot lose each other's line). Never: returns a hash.

use super::routes::{body_json, error, field, json_reply, no_content, Reply};
use super::State;
use crate::auth::passwd_cmd;
use crate::auth::password::PasswordFile;
use crate::control::Request as ControlRequest;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One edit of the password file at a time (tasks of this thread only).
static EDITS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long an edit waits for the control thread's reload.
const RELOAD_WAIT: Duration = Duration::from_secs(5);

#[allow(clippy::result_large_err)]
fn password_file(state: &State) -> Result<PathBuf, Reply> {
    state
        .cfg
        .password_file
        .clone()
        .ok_or_else(|| error(StatusCode::CONFLICT, "no password_file configured"))
}

pub fn list(state: &State) -> Reply {
    let path = match password_file(state) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match PasswordFile::load(&path) {
        Ok(f) => {
            let mut names: Vec<&str> = f.users().collect();
            names.sort_unstable();
            let data: Vec<_> = names.iter().map(|u| json!({ "username": u })).collect();
            json_reply(StatusCode::OK, &json!({ "data": data }))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Ask the control thread to reload as SIGHUP does; the files that failed.
pub async fn reload(state: &State) -> Result<Vec<String>, Reply> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if state
        .control
        .requests
        .try_send(ControlRequest::Reload(tx))
        .is_err()
    {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the control thread is busy; try again",
        ));
    }
    let errors = match tokio::time::timeout(RELOAD_WAIT, rx).await {
        Ok(Ok(Ok(errors))) => errors,
        Ok(Ok(Err(e))) => return Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
        _ => {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the control thread did not answer",
            ))
        }
    };
    // Shards take commands in order: once each answers, each runs with the reloaded files.
    let all = super::shards::all(&state.control);
    super::shards::ask(&state.control, crate::control::query::Query::Ping, &all)
        .await
        .map_err(super::routes::unavailable)?;
    Ok(errors)
}

/// What an edit does to the user's line.
enum Edit {
    Add(String),
    Change(String),
    Delete,
}

async fn edit(state: &State, user: &str, what: Edit) -> Reply {
    let path = match password_file(state) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(e) = passwd_cmd::check_user(user) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let _one_at_a_time = EDITS.lock().await;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading {}: {e}", path.display()),
            )
        }
    };
    let exists = match PasswordFile::parse(&text) {
        Ok(f) => f.contains(user),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let (hash, ok) = match what {
        Edit::Add(pw) if !exists => (Some(pw), StatusCode::CREATED),
        Edit::Add(_) => {
            return error(StatusCode::CONFLICT, format!("user {user:?} exists"));
        }
        Edit::Change(pw) if exists => (Some(pw), StatusCode::NO_CONTENT),
        Edit::Delete if exists => (None, StatusCode::NO_CONTENT),
        _ => return error(StatusCode::NOT_FOUND, format!("no user {user:?}")),
    };
    let hash = match hash {
        Some(pw) => {
            // Key derivation is slow by design: off this thread.
            let h = tokio::task::spawn_blocking(move || {
                crate::auth::password::hash_argon2id(pw.as_bytes())
            })
            .await;
            match h {
                Ok(Ok(h)) => Some(h),
                Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        None => None,
    };
    let (new_text, _) = passwd_cmd::edit(&text, user, hash.as_deref());
    if let Err(e) = passwd_cmd::write_atomic(&path, &new_text) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e);
    }
    match reload(state).await {
        Ok(errors) if errors.is_empty() => {}
        Ok(errors) => return error(StatusCode::INTERNAL_SERVER_ERROR, errors.join("; ")),
        Err(r) => return r,
    }
    log::info!(
        "admin API: MQTT user {user:?} {}",
        match ok {
            StatusCode::CREATED => "added",
            _ if hash.is_some() => "given a new password",
            _ => "deleted",
        }
    );
    if ok == StatusCode::CREATED {
        json_reply(ok, &json!({ "username": user }))
    } else {
        no_content()
    }
}

pub async fn add(state: &Arc<State>, req: Request<Incoming>) -> Reply {
    let body = match body_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match (field(&body, "username"), field(&body, "password")) {
        (Ok(u), Ok(p)) => edit(state, &u, Edit::Add(p)).await,
        (Err(r), _) | (_, Err(r)) => r,
    }
}

pub async fn change(state: &Arc<State>, name: &str, req: Request<Incoming>) -> Reply {
    let body = match body_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match field(&body, "password") {
        Ok(p) => edit(state, name, Edit::Change(p)).await,
        Err(r) => r,
    }
}

pub async fn delete(state: &Arc<State>, name: &str) -> Reply {
    edit(state, name, Edit::Delete).await
}

pub fn acl(state: &State) -> Reply {
    let rules = state
        .security
        .lock()
        .map(|s| s.acl.rule_count())
        .unwrap_or(0);
    let (file, text) = match &state.cfg.acl_file {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => (Some(p.display().to_string()), t),
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reading {}: {e}", p.display()),
                )
            }
        },
        None => (None, String::new()),
    };
    json_reply(
        StatusCode::OK,
        &json!({ "file": file, "text": text, "rules": rules }),
    )
}

pub async fn acl_reload(state: &State) -> Reply {
    match reload(state).await {
        Ok(errors) => match errors.iter().find(|e| e.starts_with("acl_file")) {
            Some(e) => error(
                StatusCode::BAD_REQUEST,
                format!("{e} (the previous ACL stays in force)"),
            ),
            None => no_content(),
        },
        Err(r) => r,
    }
}
