//! Section 4.7: topic names and topic filters — wildcards, `$` topics, length, null
//! characters, and no normalisation.

use crate::fixture::*;

/// A subscriber on each of `filters` (QoS 1); returns them in the same order.
async fn subscribers(b: &Broker, filters: &[&str]) -> Vec<Raw> {
    let mut out = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        let mut s = Raw::v5(b, &format!("sub{i}")).await;
        s.subscribe(f, 1).await;
        out.push(s);
    }
    out
}

/// Publish on `topic` and return, per subscriber, whether it received the message (all
/// subscribers share one [`QUIET`] window).
async fn who_gets(b: &Broker, subs: &mut [Raw], topic: &str) -> Vec<bool> {
    Raw::v5(b, "pub")
        .await
        .publish(topic, 1, topic.as_bytes())
        .await;
    tokio::time::sleep(QUIET).await;
    let mut got = Vec::new();
    for s in subs.iter_mut() {
        match s.next(std::time::Duration::from_millis(20)).await {
            Got::Packet(ringmq::codec::Packet::Publish(m)) => {
                assert_eq!(m.topic, topic);
                s.ack(&m).await;
                got.push(true);
            }
            Got::Timeout => got.push(false),
            other => panic!("{other:?}"),
        }
    }
    got
}

/// [MQTT-4.7.0-1] Wildcards may be used in filters but not in topic names: a PUBLISH to "a/#"
/// is refused (no code is named: Malformed, Protocol Error or Topic Name invalid).
#[tokio::test]
async fn mqtt_4_7_0_1_wildcards_are_refused_in_topic_names() {
    let b = Broker::start().await;
    let bad = raw_publish(0x30, b"a/#", None, &[], b"x");
    assert_v5_violation(&b, &bad, &[0x81, 0x82, 0x90]).await;
}

/// [MQTT-4.7.1-1] '#' stands alone or after '/', and last: "sport/#" matches "sport" and every
/// level below; "sport/#/x" and "sport#" are refused.
#[tokio::test]
async fn mqtt_4_7_1_1_multi_level_wildcard_rules() {
    let b = Broker::start().await;
    let mut subs = subscribers(&b, &["sport/#", "#"]).await;
    assert_eq!(who_gets(&b, &mut subs, "sport").await, [true, true]);
    assert_eq!(
        who_gets(&b, &mut subs, "sport/tennis/player1").await,
        [true, true]
    );
    assert_eq!(who_gets(&b, &mut subs, "sports").await, [false, true]);
    for bad in ["sport/#/x", "sport#", "#/"] {
        assert_filter_refused(&b, bad).await;
    }
}

/// [MQTT-4.7.1-2] '+' occupies a whole level, anywhere: "+/+" matches "/finance", "+" does not;
/// "sport+" and "+a" are refused.
#[tokio::test]
async fn mqtt_4_7_1_2_single_level_wildcard_rules() {
    let b = Broker::start().await;
    let mut subs = subscribers(&b, &["+/+", "+", "/+", "sport/+/player1"]).await;
    assert_eq!(
        who_gets(&b, &mut subs, "/finance").await,
        [true, false, true, false]
    );
    assert_eq!(
        who_gets(&b, &mut subs, "finance").await,
        [false, true, false, false]
    );
    assert_eq!(
        who_gets(&b, &mut subs, "sport/tennis/player1").await,
        [false, false, false, true]
    );
    assert_eq!(
        who_gets(&b, &mut subs, "sport/tennis/player2").await,
        [false, false, false, false]
    );
    for bad in ["sport+", "+a/b", "a/b+"] {
        assert_filter_refused(&b, bad).await;
    }
}

/// [MQTT-4.7.2-1] Filters starting with a wildcard do not match topic names starting with '$';
/// an explicit "$app/#" does. (The topic is `$app/...`, not `$SYS/...`: clients may not publish
/// under `$SYS`, which only the broker writes.)
#[tokio::test]
async fn mqtt_4_7_2_1_leading_wildcards_do_not_match_dollar_topics() {
    let b = Broker::start().await;
    let mut subs = subscribers(&b, &["#", "+/monitor/Clients", "$app/#", "$app/monitor/+"]).await;
    assert_eq!(
        who_gets(&b, &mut subs, "$app/monitor/Clients").await,
        [false, false, true, true]
    );
    assert_eq!(
        who_gets(&b, &mut subs, "$x").await,
        [false, false, false, false]
    );
    assert_eq!(
        who_gets(&b, &mut subs, "a/monitor/Clients").await,
        [true, true, false, false]
    );
}

/// [MQTT-4.7.3-1] Topic filters are at least one character long: an empty filter is refused.
#[tokio::test]
async fn mqtt_4_7_3_1_empty_topic_filter_is_refused() {
    let b = Broker::start().await;
    assert_filter_refused(&b, "").await;
}

/// [MQTT-4.7.3-1] Topic names are at least one character long; a zero-length topic name
/// without a Topic Alias is a Protocol Error (3.3.2.3.4).
#[tokio::test]
async fn mqtt_4_7_3_1_empty_topic_name_is_a_protocol_error() {
    let b = Broker::start().await;
    let bad = raw_publish(0x30, b"", None, &[], b"x");
    assert_v5_violation(&b, &bad, &[0x82]).await;
}

/// [MQTT-4.7.3-2] Topic names and filters must not include U+0000 (Malformed).
#[tokio::test]
async fn mqtt_4_7_3_2_null_character_is_refused_in_filters() {
    let b = Broker::start().await;
    let mut body = vec![0, 1, 0];
    body.extend(field(b"a/\0"));
    body.push(1);
    assert_v5_violation(&b, &frame(0x82, &body), &[0x81]).await;
}

/// [MQTT-4.7.3-3] Topic names and filters may be up to 65,535 bytes: the longest is accepted
/// and delivered intact.
#[tokio::test]
async fn mqtt_4_7_3_3_longest_topic_name_is_accepted() {
    let b = Broker::start().await;
    let topic = "t".repeat(65_535);
    let mut s = Raw::v5(&b, "s").await;
    s.subscribe(&topic, 1).await;
    Raw::v5(&b, "p").await.publish(&topic, 1, b"long").await;
    let m = s.recv_acked().await;
    assert_eq!((m.topic.len(), &m.payload[..]), (65_535, &b"long"[..]));
}

/// [MQTT-4.7.3-4] No normalisation when matching: case, trailing or doubled separators and
/// Unicode composition all make different topics.
#[tokio::test]
async fn mqtt_4_7_3_4_topics_are_not_normalised() {
    let b = Broker::start().await;
    let filters = ["a/b", "A/b", "a/b/", "a//b", "caf\u{e9}", "cafe\u{301}"];
    let mut subs = subscribers(&b, &filters).await;
    for (i, topic) in filters.iter().enumerate() {
        let got = who_gets(&b, &mut subs, topic).await;
        let want: Vec<bool> = (0..filters.len()).map(|j| j == i).collect();
        assert_eq!(got, want, "{topic:?}");
    }
}
