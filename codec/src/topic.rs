//! Topic name and topic filter syntax [MQTT-4.7]. Shared by the decoder (strict validation of
//! PUBLISH topics and (UN)SUBSCRIBE filters) and the broker's topic tree.

/// Whether the byte at `i` of the UTF-8 string `b` starts a control character U+0001–U+001F or
/// U+007F–U+009F: the bytes 0x01–0x1F and 0x7F, or 0xC2 followed by 0x80–0x9F (the two-byte
/// encodings of U+0080–U+009F). 0x00 counts too, though the string decoder refuses it first.
#[inline]
fn control_at(b: &[u8], i: usize) -> bool {
    match b[i] {
        0x00..=0x1F | 0x7F => true,
        0xC2 => matches!(b.get(i + 1), Some(0x80..=0x9F)),
        _ => false,
    }
}

/// Whether `s` holds a control character U+0001–U+001F or U+007F–U+009F. MQTT 5.0 §1.5.4 (3.1.1
/// §1.5.3), after [MQTT-1.5.4-2]: the data "SHOULD NOT include encodings of" them, and a receiver
/// of a packet with them "MAY treat it as a Malformed Packet". ringmq refuses them in client ids,
/// user names, topic names (PUBLISH and will) and topic filters; payloads and other strings
/// (properties) may carry them.
pub fn has_control_chars(s: &str) -> bool {
    let b = s.as_bytes();
    (0..b.len()).any(|i| control_at(b, i))
}

/// The bytes a topic name's scan stops at: the wildcards, the one-byte control characters, and
/// 0xC2 (the lead byte of U+0080–U+009F, decided by the byte after it).
const NAME_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'+' as usize] = true;
    t[b'#' as usize] = true;
    t[0x7F] = true;
    t[0xC2] = true;
    t
};

/// A topic name: non-empty, no `+` or `#` [MQTT-4.7.3-1], [MQTT-3.3.2-2], no control character
/// ([`has_control_chars`]). The rest of the UTF-8 rules are the string decoder's job. One pass
/// with one table lookup per byte: this runs on every PUBLISH (it was about 11 instructions a
/// byte as three comparisons and a bounds check).
pub fn is_valid_topic_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() {
        return false;
    }
    for (i, &c) in b.iter().enumerate() {
        if NAME_STOP[usize::from(c)] && (c != 0xC2 || control_at(b, i)) {
            return false;
        }
    }
    true
}

/// A topic filter: non-empty; `#` only alone as the last level [MQTT-4.7.1-2]; `+` only as a
/// whole level [MQTT-4.7.1-3]; no control character ([`has_control_chars`]).
pub fn is_valid_topic_filter(filter: &str) -> bool {
    if filter.is_empty() || has_control_chars(filter) {
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
    if group.is_empty()
        || group.contains(['+', '#'])
        || has_control_chars(group)
        || !is_valid_topic_filter(inner)
    {
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

    /// The definition the table must agree with.
    fn reference_topic_name(name: &str) -> bool {
        let b = name.as_bytes();
        !b.is_empty() && !(0..b.len()).any(|i| b[i] == b'+' || b[i] == b'#' || control_at(b, i))
    }

    #[test]
    fn the_topic_name_table_agrees_with_the_definition() {
        // Every one- and two-character string over the first 0x800 scalar values (all one- and
        // two-byte encodings, so every lead byte 0xC2 pair), alone and between other bytes.
        let chars: Vec<char> = (0..0x800).filter_map(char::from_u32).collect();
        for &a in &chars {
            for s in [format!("{a}"), format!("x/{a}/y"), format!("{a}\u{80}")] {
                assert_eq!(is_valid_topic_name(&s), reference_topic_name(&s), "{s:?}");
            }
            for &b in chars.iter().step_by(7) {
                let s = format!("{a}{b}");
                assert_eq!(is_valid_topic_name(&s), reference_topic_name(&s), "{s:?}");
            }
        }
        for s in ["", "a", "\u{10080}", "\u{FFFF}/+", "é#"] {
            assert_eq!(is_valid_topic_name(s), reference_topic_name(s), "{s:?}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        for c in (0x01..=0x1F).chain(0x7F..=0x9F) {
            let c = char::from_u32(c).expect("a scalar value");
            let s = format!("a/{c}b");
            assert!(has_control_chars(&s), "{:#x}", u32::from(c));
            assert!(!is_valid_topic_name(&s), "{:#x}", u32::from(c));
            assert!(!is_valid_topic_filter(&s), "{:#x}", u32::from(c));
            assert_eq!(
                split_shared(&format!("$share/g{c}/a")),
                Some(Err(())),
                "{:#x}",
                u32::from(c)
            );
        }
        // Neighbours that are not control characters: space, '~', U+00A0, U+0100, and
        // characters whose encodings contain the bytes 0x80..0x9F after a lead other than 0xC2.
        for s in [
            "a b",
            "a~",
            "a\u{A0}",
            "\u{100}",
            "\u{7FF}",
            "\u{800}",
            "\u{10080}",
            "é",
        ] {
            assert!(!has_control_chars(s), "{s:?}");
            assert!(is_valid_topic_name(s), "{s:?}");
            assert!(is_valid_topic_filter(s), "{s:?}");
        }
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
