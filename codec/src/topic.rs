//! Topic name and topic filter syntax [MQTT-4.7]. Shared by the decoder (strict validation of
//! PUBLISH topics and (UN)SUBSCRIBE filters) and the broker's topic tree.

/// A topic name: non-empty, no `+` or `#` [MQTT-4.7.3-1], [MQTT-3.3.2-2]. UTF-8 rules are the
/// string decoder's job.
pub fn is_valid_topic_name(name: &str) -> bool {
    !name.is_empty() && !name.bytes().any(|b| b == b'+' || b == b'#')
}

/// A topic filter: non-empty; `#` only alone as the last level [MQTT-4.7.1-2]; `+` only as a
/// whole level [MQTT-4.7.1-3].
pub fn is_valid_topic_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !is_last) {
            return false;
        }
        if level.contains('+') && level != "+" {
            return false;
        }
    }
    true
}

/// Whether `filter` matches `topic`, level by level, straight from [MQTT-4.7]: `+` is one level
/// (possibly empty), `#` this level and everything below (including the parent: `a/#` matches
/// `a`), and a `$` topic is not matched by a filter starting with a wildcard [MQTT-4.7.2-1].
/// The reference the broker's compiled automaton is tested against, and what tools use to check
/// a filter against a topic; it allocates nothing but is not built for speed.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Split a shared subscription `$share/{group}/{filter}` into (group, filter). `None` when the
/// filter is not shared; `Some(Err(()))` when it is malformed (empty group, group with a
/// wildcard, or no filter) [MQTT-4.8.2-1..2].
#[allow(clippy::result_unit_err)]
pub fn split_shared(filter: &str) -> Option<Result<(&str, &str), ()>> {
    let rest = filter.strip_prefix("$share/")?;
    let Some((group, inner)) = rest.split_once('/') else {
        return Some(Err(()));
    };
    if group.is_empty() || group.contains(['+', '#']) || !is_valid_topic_filter(inner) {
        return Some(Err(()));
    }
    Some(Ok((group, inner)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(is_valid_topic_name("a/b"));
        assert!(is_valid_topic_name("/"));
        assert!(!is_valid_topic_name(""));
        assert!(!is_valid_topic_name("a/+"));
        assert!(!is_valid_topic_name("a/#"));
    }

    #[test]
    fn topic_filters() {
        for ok in [
            "#",
            "+",
            "a/#",
            "+/+",
            "/+",
            "a//b",
            "sport/+/player1",
            "$SYS/#",
        ] {
            assert!(is_valid_topic_filter(ok), "{ok}");
        }
        for bad in ["", "a#", "a/#/b", "a+", "+a/b", "##", "a/b#"] {
            assert!(!is_valid_topic_filter(bad), "{bad}");
        }
    }

    #[test]
    fn reference_matching() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("+", ""));
        assert!(matches("a//c", "a//c"));
        assert!(!matches("#", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(!matches("a/+", "a/b/c"));
    }

    #[test]
    fn shared_filters() {
        assert_eq!(split_shared("a/b"), None);
        assert_eq!(split_shared("$share/g/a/+"), Some(Ok(("g", "a/+"))));
        assert_eq!(split_shared("$share//a"), Some(Err(())));
        assert_eq!(split_shared("$share/g"), Some(Err(())));
        assert_eq!(split_shared("$share/g+/a"), Some(Err(())));
    }
}
