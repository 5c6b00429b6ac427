//! ACL tests: each rule kind, the `$` rules, patterns and their refusals, parse errors, and the
//! compiled trie checked against a naive transcription of Mosquitto 2.0's algorithm (string
//! substitution, rules in file order with denies first) on random files and topics.

use super::*;
use proptest::prelude::*;

const R: Access = Access::Read;
const W: Access = Access::Write;

fn acl(text: &str) -> Acl {
    Acl::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn topic_access_kinds_and_default_readwrite() {
    let a = acl("user u\ntopic read r/#\ntopic write w/+\ntopic readwrite rw\ntopic both\n");
    let u = Some("u");
    assert!(a.check(u, "c", "r/x/y", R) && !a.check(u, "c", "r/x", W));
    assert!(a.check(u, "c", "r", R), "r/# matches r");
    assert!(a.check(u, "c", "w/x", W) && !a.check(u, "c", "w/x", R));
    assert!(
        !a.check(u, "c", "w", W) && !a.check(u, "c", "w/x/y", W),
        "+ is one level"
    );
    assert!(a.check(u, "c", "rw", R) && a.check(u, "c", "rw", W));
    assert!(
        a.check(u, "c", "both", R) && a.check(u, "c", "both", W),
        "default readwrite"
    );
    assert!(!a.check(u, "c", "other", R) && !a.check(u, "c", "other", W));
    assert!(
        !a.check(Some("v"), "c", "rw", R),
        "another user has no rules"
    );
    assert!(!a.check(None, "c", "rw", R), "anonymous has no rules");
}

#[test]
fn deny_beats_allow_whatever_the_order() {
    for text in [
        "user u\ntopic readwrite a/#\ntopic deny a/secret\n",
        "user u\ntopic deny a/secret\ntopic readwrite a/#\n",
    ] {
        let a = acl(text);
        assert!(a.check(Some("u"), "c", "a/open", W), "{text}");
        assert!(!a.check(Some("u"), "c", "a/secret", W), "{text}");
        assert!(!a.check(Some("u"), "c", "a/secret", R), "{text}");
    }
    // A user's deny is final: patterns are not consulted.
    let a = acl("user u\ntopic deny x\npattern readwrite x\npattern readwrite %u/#\n");
    assert!(!a.check(Some("u"), "c", "x", R));
    assert!(a.check(Some("u"), "c", "u/x", R));
    // A pattern deny refuses what no user rule allowed.
    let a = acl("user u\ntopic read a/#\npattern deny a/%c\n");
    assert!(
        a.check(Some("u"), "me", "a/me", R),
        "user allow decides first"
    );
    let a = acl("user u\ntopic read b\npattern deny a/%c\npattern read a/#\n");
    assert!(!a.check(Some("u"), "me", "a/me", R) && a.check(Some("u"), "me", "a/you", R));
}

#[test]
fn anonymous_rules_come_before_the_first_user_line() {
    let a = acl("topic read public/#\nuser u\ntopic read private/#\n");
    assert!(a.check(None, "c", "public/x", R));
    assert!(!a.check(None, "c", "private/x", R));
    assert!(a.check(Some("u"), "c", "private/x", R));
    assert!(
        !a.check(Some("u"), "c", "public/x", R),
        "users do not inherit anonymous rules"
    );
    // A user block may be reopened later.
    let a = acl("user u\ntopic read a\nuser v\ntopic read b\nuser u\ntopic read c\n");
    assert!(a.check(Some("u"), "x", "c", R) && !a.check(Some("v"), "x", "c", R));
}

#[test]
fn patterns_substitute_client_id_and_user_name() {
    let a = acl(
        "pattern readwrite users/%u/#\npattern read devices/%c\npattern write x/pre-%c-post/%u\n",
    );
    assert!(a.check(Some("alice"), "d1", "users/alice/inbox", W));
    assert!(!a.check(Some("alice"), "d1", "users/bob/inbox", W));
    assert!(a.check(Some("alice"), "d1", "devices/d1", R));
    assert!(
        a.check(None, "d1", "devices/d1", R),
        "%c applies without a user name"
    );
    assert!(
        !a.check(None, "d1", "users//x", W),
        "%u rules skip clients without a user name"
    );
    assert!(
        a.check(Some("al"), "d1", "x/pre-d1-post/al", W),
        "substituted anywhere in a level"
    );
    assert!(!a.check(Some("al"), "d1", "x/pre-d2-post/al", W));
    // `topic` rules never substitute.
    let a = acl("user u\ntopic read a/%u\n");
    assert!(a.check(Some("u"), "c", "a/%u", R) && !a.check(Some("u"), "c", "a/u", R));
}

#[test]
fn wildcards_and_separators_in_ids_refuse_pattern_access() {
    let a = acl("pattern readwrite users/%u/#\npattern readwrite dev/%c/#\n");
    for user in ["a+", "a#", "a/b", "#", "+", "/"] {
        assert!(
            !a.check(Some(user), "c", &format!("users/{user}/x"), W),
            "{user}"
        );
        assert!(
            !a.check(Some(user), "c", "dev/c/x", W),
            "{user}: refused for every pattern"
        );
    }
    for id in ["c+", "c#", "alice/x"] {
        assert!(!a.check(Some("u"), id, &format!("dev/{id}/y"), W), "{id}");
    }
    // Own rules still decide first for such a client (Mosquitto's order).
    let a = acl("user a+b\ntopic read t\npattern read p/%c\n");
    assert!(a.check(Some("a+b"), "c", "t", R));
    assert!(!a.check(Some("a+b"), "c", "p/c", R));
}

#[test]
fn dollar_topics_need_rules_that_start_with_dollar() {
    let a = acl(
        "user u\ntopic readwrite #\ntopic read +/broker/uptime\ntopic read $SYS/broker/load/#\n",
    );
    let u = Some("u");
    assert!(a.check(u, "c", "anything/at/all", R));
    assert!(
        !a.check(u, "c", "$SYS/broker/uptime", R),
        "# and + do not match $ topics"
    );
    assert!(a.check(u, "c", "$SYS/broker/load/x", R));
    assert!(
        !a.check(u, "c", "$SYS/broker/load/x", W),
        "nobody writes under $SYS"
    );
    assert!(!a.check(u, "c", "$share/g/t", W) && !a.check(u, "c", "$share/g/t", R));
    let none = Acl::allow_all();
    assert!(!none.is_enforcing());
    assert!(none.check(None, "c", "a/b", W) && none.check(None, "c", "$SYS/x", R));
    assert!(!none.check(None, "c", "$SYS/x", W) && !none.check(None, "c", "$SYSTEM", W));
    assert!(!none.check(Some("u"), "c", "$share/g/t", W));
}

#[test]
fn empty_file_refuses_everything() {
    let a = acl("# nothing\n\n");
    assert!(a.is_enforcing());
    assert!(!a.check(None, "c", "t", R) && !a.check(Some("u"), "c", "t", W));
    assert!(!a.check_subscribe(None, "c", "#"));
}

#[test]
fn subscribe_refused_only_when_nothing_could_be_delivered() {
    let a = acl(concat!(
        "user u\n",
        "topic read a/#\n",
        "topic deny a/secret/#\n",
        "topic write w/#\n",
        "topic deny test/nosubscribe\n",
        "topic read test/#\n",
        "topic read $SYS/broker/#\n",
        "pattern read p/%c/#\n",
    ));
    let s = |f: &str| a.check_subscribe(Some("u"), "me", f);
    assert!(
        s("a/x") && s("a/#") && s("a/+") && s("#") && s("+/x"),
        "some topic readable"
    );
    assert!(
        !s("a/secret") && !s("a/secret/#") && !s("a/secret/+/z"),
        "covered by a deny"
    );
    assert!(!s("w/x"), "write-only");
    assert!(!s("test/nosubscribe") && s("test/other") && s("test/+"));
    assert!(!s("zzz") && !s("zzz/#"), "no rule reaches it");
    assert!(s("$SYS/broker/uptime") && s("$SYS/#") && !s("$SYS/other"));
    assert!(
        !a.check_subscribe(Some("v"), "me", "a/x"),
        "other user: patterns only"
    );
    assert!(
        a.check_subscribe(Some("v"), "me", "p/me/x")
            && !a.check_subscribe(Some("v"), "me", "p/you")
    );
    assert!(s("$share/g/a/x") && !s("$share/g/a/secret") && s("$queue/a/x"));
    assert!(Acl::allow_all().check_subscribe(None, "c", "#"));
    // `#` at the root meets no `$SYS` rule: "#" receives no $SYS topics.
    let only_sys = acl("user u\ntopic read $SYS/#\n");
    assert!(!only_sys.check_subscribe(Some("u"), "c", "#"));
    assert!(only_sys.check_subscribe(Some("u"), "c", "$SYS/#"));
}

#[test]
fn token_rules_come_first_but_never_grant_sys_writes() {
    use crate::auth::jwt_acl::ClaimAcl;
    let claim = serde_json::json!([
        {"permission": "allow", "action": "all", "topic": "#"},
        {"permission": "allow", "action": "publish", "topic": "$SYS/#"},
    ]);
    let c = ClaimAcl::from_claim(&claim, Some("t"), "c").expect("claim");
    let file = acl("user t\ntopic read only/this\n");
    let cl = Some(&c);
    assert!(
        file.check_with_claims(cl, Some("t"), "c", "any/topic", W),
        "token allows"
    );
    assert!(
        !file.check(Some("t"), "c", "any/topic", W),
        "the file alone would not"
    );
    assert!(
        !file.check_with_claims(cl, Some("t"), "c", "$SYS/x", W),
        "no $SYS writes"
    );
    assert!(!file.check_with_claims(cl, Some("t"), "c", "$share/g/x", W));
    assert!(file.check_subscribe_with_claims(cl, Some("t"), "c", "$share/g/any/#"));
    // No token rule matches: the file decides.
    let narrow =
        ClaimAcl::from_claim(&serde_json::json!({"pub": ["a"]}), None, "c").expect("claim");
    assert!(file.check_with_claims(Some(&narrow), Some("t"), "c", "only/this", R));
    assert!(!file.check_with_claims(Some(&narrow), Some("t"), "c", "b", W));
    assert!(file.check_with_claims(None, Some("t"), "c", "only/this", R));
}

#[test]
fn parse_errors_name_the_line() {
    for (text, line, want) in [
        ("topic read a\nbogus line\n", 2, "unknown keyword"),
        ("\n\ntopic\n", 3, "needs a topic"),
        ("user\n", 1, "needs a user name"),
        ("topic sometimes a/b\n", 1, "not read, write"),
        ("topic read a/#/b\n", 1, "last level"),
        ("topic read a/b+\n", 1, "whole levels"),
        ("pattern read %c#\n", 1, "whole levels"),
        ("topic\tread\tx\n", 1, "unknown keyword"),
    ] {
        let e = Acl::parse(text).expect_err(text);
        assert_eq!(e.line, line, "{text:?}");
        assert!(e.reason.contains(want), "{text:?}: {}", e.reason);
    }
    let e = Acl::load(Path::new("/nonexistent/acl")).expect_err("missing");
    assert!(e.to_string().contains("/nonexistent/acl"));
}

#[test]
fn mosquitto_tokenising() {
    // "topic read" is the topic "read" with readwrite; the topic is the rest of the line.
    let a = acl("  user carol smith  \ntopic read\ntopic deny a b\ntopic read   spaced/#   \n  # indented\n");
    let c = Some("carol smith");
    assert!(a.check(c, "x", "read", W));
    assert!(!a.check(c, "x", "a b", R));
    assert!(a.check(c, "x", "spaced/y", R));
    assert_eq!(a.rule_count(), 3);
}

// ---- the naive oracle: Mosquitto 2.0's algorithm transcribed directly ----

struct NRule {
    pattern: bool,
    user: Option<String>,
    allow: u8,
    topic: String,
}

fn naive_rules(text: &str) -> Vec<NRule> {
    let mut user = None;
    let mut out = Vec::new();
    for raw in text.lines() {
        match parse_line(raw).expect("valid") {
            None => {}
            Some(Line::User(u)) => user = Some(u.to_string()),
            Some(Line::Rule {
                pattern,
                allow,
                topic,
            }) => out.push(NRule {
                pattern,
                user: user.clone(),
                allow,
                topic: topic.into(),
            }),
        }
    }
    // Mosquitto puts denies first, otherwise file order.
    out.sort_by_key(|r| r.allow != 0);
    out
}

fn naive_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') != filter.starts_with('$') {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    for (i, fl) in f.iter().enumerate() {
        if *fl == "#" {
            return true;
        }
        match t.get(i) {
            None => return false,
            Some(tl) if *fl != "+" && fl != tl => return false,
            _ => {}
        }
    }
    f.len() == t.len()
}

fn substitute(topic: &str, user: Option<&str>, cid: &str) -> Option<String> {
    if topic.contains("%u") && user.is_none() {
        return None;
    }
    let mut out = String::new();
    let mut it = topic.chars().peekable();
    while let Some(c) = it.next() {
        match (c, it.peek()) {
            ('%', Some('c')) => {
                it.next();
                out.push_str(cid);
            }
            ('%', Some('u')) => {
                it.next();
                out.push_str(user.unwrap_or(""));
            }
            _ => out.push(c),
        }
    }
    Some(out)
}

fn naive_check(
    rules: &[NRule],
    user: Option<&str>,
    cid: &str,
    topic: &str,
    access: Access,
) -> bool {
    if dollar_refused(topic, access) {
        return false;
    }
    let need = access.bit();
    let own: Vec<&NRule> = rules
        .iter()
        .filter(|r| !r.pattern && r.user.as_deref() == user)
        .collect();
    let pats: Vec<&NRule> = rules.iter().filter(|r| r.pattern).collect();
    if own.is_empty() && pats.is_empty() {
        return false;
    }
    for r in own {
        if naive_matches(&r.topic, topic) {
            if r.allow == 0 {
                return false;
            }
            if r.allow & need != 0 {
                return true;
            }
        }
    }
    if !pats.is_empty() && (user.is_some_and(dangerous) || dangerous(cid)) {
        return false;
    }
    for r in pats {
        let Some(f) = substitute(&r.topic, user, cid) else {
            continue;
        };
        if naive_matches(&f, topic) {
            if r.allow == 0 {
                return false;
            }
            if r.allow & need != 0 {
                return true;
            }
        }
    }
    false
}

fn level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "c1", "u1", "", "$SYS", "x%cy"])
}

fn rule_line() -> impl Strategy<Value = String> {
    let kw = prop::sample::select(vec!["topic", "pattern", "user"]);
    let access = prop::sample::select(vec!["", "read ", "write ", "readwrite ", "deny "]);
    let lvl = prop::sample::select(vec!["a", "b", "+", "%c", "%u", "c1", "$SYS", "pre%cpost"]);
    (
        kw,
        access,
        prop::collection::vec(lvl, 1..4),
        any::<bool>(),
        prop::sample::select(vec!["u1", "u2"]),
    )
        .prop_map(|(kw, access, levels, hash, user)| {
            if kw == "user" {
                return format!("user {user}");
            }
            let mut t = levels.join("/");
            if hash {
                t.push_str("/#");
            }
            format!("{kw} {access}{t}")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn trie_agrees_with_naive_mosquitto(
        lines in prop::collection::vec(rule_line(), 0..12),
        topic in prop::collection::vec(level(), 1..5),
        user in prop::sample::select(vec![None, Some("u1"), Some("u2"), Some("a+"), Some("u/x")]),
        cid in prop::sample::select(vec!["c1", "x", "c#", "$SYS"]),
        write in any::<bool>(),
    ) {
        let text = lines.join("\n");
        let a = Acl::parse(&text).expect("generated files are valid");
        let rules = naive_rules(&text);
        let topic = topic.join("/");
        let access = if write { W } else { R };
        prop_assert_eq!(
            a.check(user, cid, &topic, access),
            naive_check(&rules, user, cid, &topic, access),
            "file:\n{}\ntopic {:?} user {:?} cid {:?} {:?}", text, topic, user, cid, access
        );
    }

    #[test]
    fn subscribe_refusal_is_sound(
        lines in prop::collection::vec(rule_line(), 0..12),
        filter in prop::collection::vec(prop::sample::select(vec!["a", "b", "+", "c1", "$SYS", "u1"]), 1..4),
        hash in any::<bool>(),
        topics in prop::collection::vec(prop::collection::vec(level(), 1..5), 1..40),
        user in prop::sample::select(vec![None, Some("u1"), Some("u2")]),
    ) {
        let text = lines.join("\n");
        let a = Acl::parse(&text).expect("valid");
        let mut filter = filter.join("/");
        if hash {
            filter.push_str("/#");
        }
        if !a.check_subscribe(user, "c1", &filter) {
            // Refused: no topic the filter matches may be readable.
            for t in topics {
                let t = t.join("/");
                if naive_matches(&filter, &t) {
                    prop_assert!(!a.check(user, "c1", &t, R), "file:\n{}\nfilter {} topic {}", text, filter, t);
                }
            }
        }
    }
}

#[test]
fn ten_thousand_rules_compile_and_check_fast() {
    // Not a benchmark (see benches/acl.rs): a guard that a check stays a walk, not a scan.
    let mut text = String::from("user u\n");
    for i in 0..10_000 {
        text.push_str(&format!("topic read site/{i}/+/temp\n"));
    }
    text.push_str("pattern readwrite dev/%c/#\n");
    let a = acl(&text);
    assert_eq!(a.rule_count(), 10_001);
    let t0 = std::time::Instant::now();
    let mut ok = 0;
    for i in 0..100_000u32 {
        let topic = format!("site/{}/room/temp", i % 20_000);
        ok += usize::from(a.check(Some("u"), "d", &topic, R));
    }
    assert_eq!(ok, 50_000);
    // 100k checks (and 100k format! calls) well under a second even unoptimised.
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
}
