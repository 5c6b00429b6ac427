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
    fn shared_filters() {
        assert_eq!(split_shared("a/b"), None);
        assert_eq!(split_shared("$share/g/a/+"), Some(Ok(("g", "a/+"))));
        assert_eq!(split_shared("$share//a"), Some(Err(())));
        assert_eq!(split_shared("$share/g"), Some(Err(())));
        assert_eq!(split_shared("$share/g+/a"), Some(Err(())));
    }
}
