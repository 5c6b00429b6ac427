//! The OpenAPI 3 document of the admin API, served at `/api/v1/openapi.json`. Written by hand
//! from one table ([`ROUTES`]), which the integration test walks: every operation listed must be
//! answered by the server (not 404 or 405), so the document cannot drift from the routes.

use serde_json::{json, Map, Value};

/// One operation: method, path (OpenAPI template), summary, query parameters, and the
/// responses (status, description, schema name in `components` or "").
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub query: &'static [(&'static str, &'static str, &'static str)],
    pub body: Option<&'static str>,
    pub responses: &'static [(&'static str, &'static str, &'static str)],
    pub open: bool,
}

const PAGED: &[(&str, &str, &str)] = &[
    ("page", "integer", "page number, from 1 (default 1)"),
    (
        "limit",
        "integer",
        "entries per page, 1 to 1000 (default 50)",
    ),
    ("like", "string", "substring the key must contain"),
];

const AUTH_ERRORS: &[(&str, &str, &str)] = &[
    ("401", "no admin user yet, or no valid token", "Error"),
    ("503", "a shard did not answer in time", "Error"),
];

macro_rules! responses {
    ($($r:expr),* $(,)?) => { &[$($r,)* AUTH_ERRORS[0], AUTH_ERRORS[1]] };
}

pub const ROUTES: &[Route] = &[
    Route {
        method: "post",
        path: "/api/v1/login",
        summary: "Log in as an admin user; returns a bearer token",
        query: &[],
        body: Some("Login"),
        responses: &[
            ("200", "logged in", "Token"),
            ("401", "bad credentials, or the API is closed", "Error"),
            ("429", "too many failed logins from this address", "Error"),
        ],
        open: true,
    },
    Route {
        method: "get",
        path: "/api/v1/openapi.json",
        summary: "This document",
        query: &[],
        body: None,
        responses: &[("200", "the OpenAPI document", "")],
        open: true,
    },
    Route {
        method: "get",
        path: "/api/v1/stats",
        summary: "Counters per shard and in total (totals since start)",
        query: &[],
        body: None,
        responses: responses![("200", "statistics", "Stats")],
        open: false,
    },
    Route {
        method: "get",
        path: "/api/v1/stats/topics",
        summary: "Forwarding statistics per first topic level",
        query: &[],
        body: None,
        responses: responses![("200", "per prefix", "TopicStats"),],
        open: false,
    },
    Route {
        method: "get",
        path: "/api/v1/clients",
        summary: "Connected clients, paged, filtered by client id substring",
        query: PAGED,
        body: None,
        responses: responses![("200", "a page of clients", "ClientPage")],
        open: false,
    },
    Route {
        method: "get",
        path: "/api/v1/clients/{clientid}",
        summary: "One connected client",
        query: &[],
        body: None,
        responses: responses![
            ("200", "the client", "Client"),
            ("404", "not connected", "Error"),
        ],
        open: false,
    },
    Route {
        method: "delete",
        path: "/api/v1/clients/{clientid}",
        summary: "Disconnect a client (v5: DISCONNECT 0x98 Administrative action)",
        query: &[],
        body: None,
        responses: responses![
            ("204", "disconnected", ""),
            ("404", "not connected", "Error"),
        ],
        open: false,
    },
    Route {
        method: "get",
        path: "/api/v1/sessions",
        summary: "Sessions, connected or not, paged",
        query: PAGED,
        body: None,
        responses: responses![("200", "a page of sessions", "SessionPage")],
        open: false,
    },
    Route {
        method: "get",
        path: "/api/v1/subscriptions",
        summary: "Subscriptions, paged; clientid= for one client's",
        query: &[
            ("page", "integer", "page number, from 1"),
            ("limit", "integer", "entries per page, 1 to 1000"),
            ("clientid", "string", "only this client's subscriptions"),
        ],
        body: None,
        responses: responses![("200", "a page of subscriptions", "SubscriptionPage")],
        open: false,
    },
    Route {
        method: "get",
        path: "/api/v1/retained",
        summary: "Retained messages, paged, filtered by topic substring",
        query: PAGED,
        body: None,
        responses: responses![("200", "a page of retained messages", "RetainedPage")],
        open: false,
    },
    Route {
        method: "delete",
        path: "/api/v1/retained/{topic}",
        summary:
            "Clear a retained topic (percent-encode its slashes), as an empty retained PUBLISH does",
        query: &[],
        body: None,
        responses: responses![
            ("204", "cleared", ""),
            ("404", "nothing retained there", "Error"),
        ],
        open: false,
    },
    Route {
        method: "get",
        path: "/api/v1/users",
        summary: "MQTT users of the password_file",
        query: &[],
        body: None,
        responses: responses![
            ("200", "user names", "UserList"),
            ("409", "no password_file configured", "Error"),
        ],
        open: false,
    },
    Route {
        method: "post",
        path: "/api/v1/users",
        summary: "Add an MQTT user (argon2id) and reload the password file",
        query: &[],
        body: Some("NewUser"),
        responses: responses![
            ("201", "added", ""),
            ("409", "exists, or no password_file configured", "Error"),
        ],
        open: false,
    },
    Route {
        method: "put",
        path: "/api/v1/users/{name}",
        summary: "Change an MQTT user's password",
        query: &[],
        body: Some("Password"),
        responses: responses![
            ("204", "changed", ""),
            ("404", "no such user", "Error"),
            ("409", "no password_file configured", "Error"),
        ],
        open: false,
    },
    Route {
        method: "delete",
        path: "/api/v1/users/{name}",
        summary: "Delete an MQTT user",
        query: &[],
        body: None,
        responses: responses![
            ("204", "deleted", ""),
            ("404", "no such user", "Error"),
            ("409", "no password_file configured", "Error"),
        ],
        open: false,
    },
    Route {
        method: "get",
        path: "/api/v1/acl",
        summary: "The ACL file and its rule count",
        query: &[],
        body: None,
        responses: responses![("200", "the ACL", "Acl")],
        open: false,
    },
    Route {
        method: "post",
        path: "/api/v1/acl/reload",
        summary: "Reload the configuration files as SIGHUP does",
        query: &[],
        body: None,
        responses: responses![
            ("204", "reloaded", ""),
            (
                "400",
                "the ACL file does not parse (the previous ACL stays)",
                "Error"
            ),
        ],
        open: false,
    },
    Route {
        method: "get",
        path: "/api/v1/listeners",
        summary: "The MQTT listeners",
        query: &[],
        body: None,
        responses: responses![("200", "listeners", "ListenerList")],
        open: false,
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Prometheus text exposition (no token)",
        query: &[],
        body: None,
        responses: &[("200", "metrics", "")],
        open: true,
    },
];

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn obj(props: &[(&str, Value)]) -> Value {
    let p: Map<String, Value> = props
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    json!({ "type": "object", "properties": p })
}

fn page_of(item: &str) -> Value {
    obj(&[
        ("data", json!({ "type": "array", "items": reference(item) })),
        ("meta", reference("Meta")),
    ])
}

fn schemas() -> Value {
    let int = || json!({ "type": "integer" });
    let s = || json!({ "type": "string" });
    let b = || json!({ "type": "boolean" });
    let nullable_s = || json!({ "type": "string", "nullable": true });
    let counters = obj(&[
        ("shard", int()),
        ("connections_accepted", int()),
        ("messages_in", int()),
        ("messages_out", int()),
        ("dropped", int()),
        (
            "drops",
            json!({ "type": "object", "additionalProperties": { "type": "integer" } }),
        ),
    ]);
    json!({
        "Error": obj(&[("error", s())]),
        "Login": obj(&[("username", s()), ("password", s())]),
        "Token": obj(&[("token", s()), ("expires_in", int())]),
        "NewUser": obj(&[("username", s()), ("password", s())]),
        "Password": obj(&[("password", s())]),
        "Meta": obj(&[("page", int()), ("limit", int()), ("count", int())]),
        "Counters": counters,
        "Stats": obj(&[
            ("uptime_s", int()),
            ("shards", json!({ "type": "array", "items": reference("Counters") })),
            ("total", reference("Counters")),
        ]),
        "TopicStats": obj(&[("data", json!({ "type": "array", "items": obj(&[
            ("prefix", s()), ("messages_in", int()), ("bytes_in", int()), ("deliveries", int()),
        ]) }))]),
        "Client": obj(&[
            ("clientid", s()), ("username", nullable_s()), ("ip", nullable_s()),
            ("port", int()), ("proto_ver", int()), ("keepalive", int()),
            ("clean_start", b()), ("connected_at", int()), ("shard", int()),
            ("listener", nullable_s()), ("inflight", int()), ("queued", int()),
            ("subscriptions", int()),
        ]),
        "ClientPage": page_of("Client"),
        "Session": obj(&[
            ("clientid", s()), ("connected", b()), ("expiry_s", int()),
            ("subscriptions", int()), ("queued", int()), ("inflight", int()), ("shard", int()),
        ]),
        "SessionPage": page_of("Session"),
        "Subscription": obj(&[("clientid", s()), ("topic", s()), ("qos", int()), ("shard", int())]),
        "SubscriptionPage": page_of("Subscription"),
        "Retained": obj(&[
            ("topic", s()), ("qos", int()), ("payload_size", int()),
            ("payload", s()), ("payload_base64", s()), ("payload_truncated", b()),
        ]),
        "RetainedPage": page_of("Retained"),
        "UserList": obj(&[("data", json!({ "type": "array", "items": obj(&[("username", s())]) }))]),
        "Acl": obj(&[("file", nullable_s()), ("text", s()), ("rules", int())]),
        "ListenerList": obj(&[("data", json!({ "type": "array", "items": obj(&[
            ("bind", s()), ("protocol", s()), ("allow_anonymous", b()), ("tls", b()), ("path", s()),
        ]) }))]),
    })
}

fn operation(r: &Route) -> Value {
    let mut params: Vec<Value> = r
        .query
        .iter()
        .map(|(name, ty, d)| {
            json!({ "name": name, "in": "query", "required": false,
                    "description": d, "schema": { "type": ty } })
        })
        .collect();
    for name in ["clientid", "topic", "name"] {
        if r.path.contains(&format!("{{{name}}}")) {
            params.push(json!({ "name": name, "in": "path", "required": true,
                                "schema": { "type": "string" } }));
        }
    }
    let mut responses = Map::new();
    for (code, d, schema) in r.responses {
        let mut resp = json!({ "description": d });
        if !schema.is_empty() {
            resp["content"] = json!({ "application/json": { "schema": reference(schema) } });
        }
        responses.insert((*code).to_string(), resp);
    }
    let mut op = json!({ "summary": r.summary, "parameters": params, "responses": responses });
    if let Some(b) = r.body {
        op["requestBody"] = json!({ "required": true,
            "content": { "application/json": { "schema": reference(b) } } });
    }
    if r.open {
        op["security"] = json!([]);
    }
    op
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method] = operation(r);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "ringmq admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Log in with POST /api/v1/login, then send Authorization: Bearer TOKEN. \
                            Closed (401) until an admin user exists (`ringmq admin add-user NAME`).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        },
        "security": [ { "bearer": [] } ],
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_reference_resolves() {
        let d = super::document();
        let text = d.to_string();
        let schemas = &d["components"]["schemas"];
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(schemas.get(&name).is_some(), "missing schema {name}");
        }
        assert_eq!(
            d["paths"]["/api/v1/clients/{clientid}"]
                .as_object()
                .map(|o| o.len()),
            Some(2)
        );
    }
}
