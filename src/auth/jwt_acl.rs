//! ACL rules carried in a JWT claim, in EMQX's form, compiled once per connection at CONNECT.
//!
//! Owns: reading the claim (EMQX 5's rule list, or the older `{"pub": [..], "sub": [..],
//! "all": [..]}` object), substituting `${username}` and `${clientid}`, and deciding with the
//! rules in order, first match wins, as EMQX does. A client's token rules come before the
//! broker's `acl_file`: `None` from a check means "no rule matched", and the caller asks the
//! file ACL next. Never: panics on claim contents (a malformed claim refuses the token at
//! CONNECT), or decides `$SYS` writes and `$share` names (the file ACL's `$` rules apply to
//! every client first).
//!
//! Rule form (EMQX 5): `{"permission": "allow"|"deny", "action": "publish"|"subscribe"|"all",
//! "topic": "a/${clientid}/#"}` (or `"topics": [..]`); `"eq a/#"` matches the text literally.
//! EMQX's optional `qos`/`retain` conditions are not evaluated here (the checks do not carry
//! them), so a rule with conditions is read conservatively: an `allow` with conditions never
//! matches, a `deny` with conditions always applies.
//!
//! Delivery: EMQX checks only SUBSCRIBE; ringmq also checks each delivery (like Mosquitto), and
//! uses the `subscribe` rules for it with the topic as the filter, so a `deny` on `a/secret`
//! also stops `a/secret` from reaching a client subscribed to `a/#`.

use super::acl::Access;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Publish,
    Subscribe,
    All,
}

#[derive(Debug, Clone)]
enum Matcher {
    /// `eq TOPIC`: the text itself, wildcards and all.
    Eq(Box<str>),
    Filter(Box<str>),
    /// A placeholder's value contained `+`, `#` or `/`: the rule matches nothing.
    Never,
}

#[derive(Debug, Clone)]
struct Rule {
    allow: bool,
    action: Action,
    matcher: Matcher,
}

/// The compiled ACL claim of one connection.
#[derive(Debug, Clone, Default)]
pub struct ClaimAcl {
    rules: Vec<Rule>,
}

/// Topic name `topic` matched by filter `filter` (MQTT rules, `$` topics only by `$` filters):
/// the codec's reference matcher.
pub(crate) fn topic_matches(filter: &str, topic: &str) -> bool {
    crate::codec::topic::matches(filter, topic)
}

/// Every topic matching filter `sub` is matched by filter `rule`.
pub(crate) fn filter_within(sub: &str, rule: &str) -> bool {
    if sub.starts_with('$') && !rule.starts_with('$') {
        return false;
    }
    let mut s = sub.split('/');
    let mut r = rule.split('/');
    loop {
        match (s.next(), r.next()) {
            (_, Some("#")) => return true,
            (Some("#"), _) => return false,
            (Some(_), Some("+")) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn substitute(topic: &str, username: Option<&str>, client_id: &str) -> Matcher {
    let (eq, text) = match topic.strip_prefix("eq ") {
        Some(t) => (true, t),
        None => (false, topic),
    };
    let mut out = text.to_string();
    for (placeholder, value) in [("${username}", username), ("${clientid}", Some(client_id))] {
        if !out.contains(placeholder) {
            continue;
        }
        match value {
            Some(v) if !v.contains(['+', '#', '/']) => out = out.replace(placeholder, v),
            _ => return Matcher::Never,
        }
    }
    if eq {
        Matcher::Eq(out.into())
    } else {
        Matcher::Filter(out.into())
    }
}

fn topics_of(rule: &serde_json::Map<String, Value>) -> Result<Vec<&str>, String> {
    if let Some(t) = rule.get("topic") {
        return t
            .as_str()
            .map(|s| vec![s])
            .ok_or_else(|| "\"topic\" must be a string".to_string());
    }
    match rule.get("topics") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .ok_or_else(|| "\"topics\" must be strings".to_string())
            })
            .collect(),
        _ => Err("rule has no \"topic\"".into()),
    }
}

impl ClaimAcl {
    /// Compile the claim's value for this connection.
    pub fn from_claim(
        claim: &Value,
        username: Option<&str>,
        client_id: &str,
    ) -> Result<ClaimAcl, String> {
        let mut rules = Vec::new();
        match claim {
            Value::Array(list) => {
                for (i, r) in list.iter().enumerate() {
                    let Some(r) = r.as_object() else {
                        return Err(format!("ACL rule {i} is not an object"));
                    };
                    let allow = match r.get("permission").and_then(Value::as_str) {
                        Some("allow") => true,
                        Some("deny") => false,
                        _ => return Err(format!("ACL rule {i}: permission must be allow or deny")),
                    };
                    let action = match r.get("action").and_then(Value::as_str) {
                        Some("publish") => Action::Publish,
                        Some("subscribe") => Action::Subscribe,
                        Some("all") | None => Action::All,
                        Some(a) => return Err(format!("ACL rule {i}: unknown action {a:?}")),
                    };
                    let conditional = r.contains_key("qos") || r.contains_key("retain");
                    for t in topics_of(r).map_err(|e| format!("ACL rule {i}: {e}"))? {
                        let matcher = match (conditional, allow) {
                            (true, true) => Matcher::Never,
                            _ => substitute(t, username, client_id),
                        };
                        rules.push(Rule {
                            allow,
                            action,
                            matcher,
                        });
                    }
                }
            }
            Value::Object(old) => {
                for (key, action) in [
                    ("pub", Action::Publish),
                    ("sub", Action::Subscribe),
                    ("all", Action::All),
                ] {
                    let Some(v) = old.get(key) else { continue };
                    let Some(list) = v.as_array() else {
                        return Err(format!("ACL \"{key}\" must be a list of topics"));
                    };
                    for t in list {
                        let Some(t) = t.as_str() else {
                            return Err(format!("ACL \"{key}\" must be a list of topics"));
                        };
                        rules.push(Rule {
                            allow: true,
                            action,
                            matcher: substitute(t, username, client_id),
                        });
                    }
                }
            }
            _ => return Err("ACL claim must be a list of rules or a pub/sub/all object".into()),
        }
        Ok(ClaimAcl { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Publish (`Write`) or delivery (`Read`) of the topic name `topic`: `Some(verdict)` from
    /// the first matching rule, `None` when none matches.
    pub fn check(&self, topic: &str, access: Access) -> Option<bool> {
        let wanted = match access {
            Access::Write => Action::Publish,
            Access::Read => Action::Subscribe,
        };
        self.rules
            .iter()
            .filter(|r| r.action == wanted || r.action == Action::All)
            .find(|r| match &r.matcher {
                Matcher::Eq(s) => &**s == topic,
                Matcher::Filter(f) => topic_matches(f, topic),
                Matcher::Never => false,
            })
            .map(|r| r.allow)
    }

    /// SUBSCRIBE to `filter`: first matching rule, `None` when none matches.
    pub fn check_subscribe(&self, filter: &str) -> Option<bool> {
        self.rules
            .iter()
            .filter(|r| r.action != Action::Publish)
            .find(|r| match &r.matcher {
                Matcher::Eq(s) => &**s == filter,
                Matcher::Filter(f) => filter_within(filter, f),
                Matcher::Never => false,
            })
            .map(|r| r.allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emqx_rule_list_first_match_wins() {
        let claim = json!([
            {"permission": "allow", "action": "publish", "topic": "t/${clientid}/#"},
            {"permission": "deny", "action": "all", "topic": "t/#"},
            {"permission": "allow", "action": "subscribe", "topic": "eq s/#"},
            {"permission": "allow", "action": "all", "topics": ["u/${username}", "x/+"]},
            {"permission": "allow", "action": "publish", "topic": "q/1", "qos": [1]},
            {"permission": "deny", "action": "publish", "topic": "r/1", "retain": true},
        ]);
        let a = ClaimAcl::from_claim(&claim, Some("bob"), "c1").expect("claim compiles");
        assert_eq!(a.check("t/c1/x", Access::Write), Some(true));
        assert_eq!(a.check("t/c2/x", Access::Write), Some(false));
        assert_eq!(
            a.check("t/c1/x", Access::Read),
            Some(false),
            "publish rule not for reads"
        );
        assert_eq!(a.check_subscribe("s/#"), Some(true), "eq: literal filter");
        assert_eq!(a.check_subscribe("s/x"), None);
        assert_eq!(a.check("u/bob", Access::Write), Some(true));
        assert_eq!(a.check_subscribe("x/+"), Some(true));
        assert_eq!(a.check_subscribe("x/#"), None, "x/# is wider than x/+");
        assert_eq!(
            a.check("q/1", Access::Write),
            None,
            "conditional allow never matches"
        );
        assert_eq!(
            a.check("r/1", Access::Write),
            Some(false),
            "conditional deny applies"
        );
        assert_eq!(a.check("zzz", Access::Write), None);
    }

    #[test]
    fn old_pub_sub_all_form() {
        let claim = json!({"pub": ["p/${username}"], "sub": ["s/#"], "all": ["a"]});
        let a = ClaimAcl::from_claim(&claim, Some("u"), "c").expect("compiles");
        assert_eq!(a.check("p/u", Access::Write), Some(true));
        assert_eq!(a.check("s/x", Access::Write), None);
        assert_eq!(a.check_subscribe("s/x/y"), Some(true));
        assert_eq!(a.check("a", Access::Read), Some(true));
    }

    #[test]
    fn dangerous_placeholder_values_match_nothing() {
        let claim = json!([{"permission": "allow", "action": "all", "topic": "u/${username}/#"}]);
        for user in [Some("a+"), Some("#"), Some("a/b"), None] {
            let a = ClaimAcl::from_claim(&claim, user, "c").expect("compiles");
            assert_eq!(a.check("u/a/b/x", Access::Write), None, "{user:?}");
            assert_eq!(a.check_subscribe("u/+/#"), None, "{user:?}");
        }
    }

    #[test]
    fn malformed_claims_are_errors() {
        for c in [
            json!("nope"),
            json!([1]),
            json!([{"permission": "maybe", "topic": "t"}]),
            json!([{"permission": "allow", "action": "fly", "topic": "t"}]),
            json!([{"permission": "allow"}]),
            json!({"pub": "t"}),
            json!({"pub": [1]}),
        ] {
            assert!(ClaimAcl::from_claim(&c, None, "c").is_err(), "{c}");
        }
    }

    #[test]
    fn matching_helpers() {
        assert!(topic_matches("a/+/c", "a/b/c") && !topic_matches("a/+", "a/b/c"));
        assert!(topic_matches("a/#", "a") && topic_matches("#", "x/y"));
        assert!(!topic_matches("#", "$SYS/x") && topic_matches("$SYS/#", "$SYS/x"));
        assert!(filter_within("a/+/c", "a/#") && filter_within("a/b", "a/+"));
        assert!(!filter_within("a/#", "a/+") && !filter_within("a/+", "a/b"));
        assert!(filter_within("a", "a/#") && !filter_within("#", "+/#"));
        assert!(filter_within("+/#", "#") && !filter_within("$SYS/x", "#"));
    }
}
