//! Scenarios: from command-line shape to a [`Plan`] the engine executes.
//!
//! A plan says, for every publisher, which topics it cycles through and which *stream* each
//! message belongs to; for every subscriber, which filters it subscribes to and which streams
//! it must receive in full. The engine needs nothing else, so a new scenario is only a new plan
//! builder here. Every builder checks its own topics against its filters with [`matches`], so a
//! mistyped `--topic`/`--filter` fails before any traffic instead of reporting 100% loss.

use crate::payload::MAX_STREAM;
use crate::stats::StreamSet;
use bytestring::ByteString;

/// One destination of a publisher: a topic and the stream offset its messages use (the stream
/// id is `publisher × streams_per_pub + offset`).
#[derive(Debug, Clone)]
pub struct Target {
    pub topic: ByteString,
    pub stream_offset: u32,
}

#[derive(Debug, Clone)]
pub struct PubSpec {
    /// Cycled through round-robin.
    pub targets: Vec<Target>,
    /// Topics matching no subscription (`wildcard --miss-ratio`); messages to them are not
    /// expected anywhere.
    pub miss_topics: Vec<ByteString>,
    /// Fraction of messages sent to `miss_topics`.
    pub miss_ratio: f64,
    /// Reading subscribers that receive each message sent to a target. 0: nobody is expected
    /// to receive them (the `stalled` topic), so there is no end-to-end window either.
    pub fanout: u32,
    /// Index into [`Plan::groups`]: which part of the scenario this publisher belongs to
    /// (`stalled`: healthy pairs vs the stalled topic), reported separately.
    pub group: u8,
    /// Send as fast as the MQTT window allows even with `--rate` (the `stalled` topic's
    /// publishers: `--rate` paces only the healthy traffic).
    pub closed_loop: bool,
}

#[derive(Debug, Clone)]
pub struct SubSpec {
    pub filters: Vec<ByteString>,
    pub streams: StreamSet,
    /// Stop reading the socket once SUBACK arrives and never read again (`stalled`); its
    /// stream set is empty, since nothing it is sent can be received.
    pub stalled: bool,
    /// Subscription QoS instead of `--qos` (`stalled --stalled-qos`).
    pub qos: Option<u8>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: &'static str,
    pub publishers: Vec<PubSpec>,
    pub subscribers: Vec<SubSpec>,
    /// Connections that only connect and stay idle (`conns`).
    pub idle: usize,
    pub streams_per_pub: u32,
    /// Names of the publisher groups ([`PubSpec::group`]); one ("all") for most scenarios.
    pub groups: Vec<String>,
    /// Scenario-specific facts for the report (filters, mix, hit fraction...).
    pub details: serde_json::Value,
    /// One line for the human summary.
    pub description: String,
}

impl Plan {
    pub fn clients(&self) -> usize {
        self.publishers.len() + self.subscribers.len() + self.idle
    }
}

/// MQTT topic matching [MQTT-4.7], from the codec crate: the generator checks its plans with
/// the same reference the broker's automaton is tested against.
pub use ringmq_codec::topic::matches;

/// Expand `{i}` (index) and `{run}` (run id) in a topic pattern.
pub fn expand(pattern: &str, run: &str, i: usize) -> String {
    pattern.replace("{run}", run).replace("{i}", &i.to_string())
}

fn check_streams(n: u64) -> Result<(), String> {
    if n > u64::from(MAX_STREAM) {
        return Err(format!(
            "{n} streams exceed the payload header's 24-bit stream id ({MAX_STREAM})"
        ));
    }
    Ok(())
}

fn bs(s: String) -> ByteString {
    ByteString::from(s)
}

fn all_group() -> Vec<String> {
    vec!["all".into()]
}

/// One publisher → subscriber pair on `topic`: stream `i`, open loop, in `group`.
fn pair(topic: ByteString, i: usize, group: u8) -> (SubSpec, PubSpec) {
    let sub = SubSpec {
        filters: vec![topic.clone()],
        streams: StreamSet::single(i as u32),
        stalled: false,
        qos: None,
    };
    let publisher = PubSpec {
        targets: vec![Target {
            topic,
            stream_offset: 0,
        }],
        miss_topics: vec![],
        miss_ratio: 0.0,
        fanout: 1,
        group,
        closed_loop: false,
    };
    (sub, publisher)
}

/// `pairs`: N publisher/subscriber pairs, pair i on its own topic (point to point).
pub fn pairs(n: usize, topic_pattern: Option<&str>, run: &str) -> Result<Plan, String> {
    if n == 0 {
        return Err("--pairs must be at least 1".into());
    }
    check_streams(n as u64)?;
    let pattern = topic_pattern.unwrap_or("bench/{run}/pairs/{i}");
    if !pattern.contains("{i}") {
        return Err("pairs: --topic must contain {i} so each pair has its own topic".into());
    }
    let mut publishers = Vec::with_capacity(n);
    let mut subscribers = Vec::with_capacity(n);
    for i in 0..n {
        let (s, p) = pair(bs(expand(pattern, run, i)), i, 0);
        subscribers.push(s);
        publishers.push(p);
    }
    Ok(Plan {
        scenario: "pairs",
        publishers,
        subscribers,
        idle: 0,
        streams_per_pub: 1,
        groups: all_group(),
        details: serde_json::json!({ "pairs": n, "topic": pattern }),
        description: format!("{n} publisher→subscriber pairs, topic {pattern}"),
    })
}

/// `fanin`: P publishers on distinct topics, S subscribers on one wildcard filter covering them.
pub fn fanin(
    p: usize,
    s: usize,
    topic_pattern: Option<&str>,
    filter: Option<&str>,
    run: &str,
) -> Result<Plan, String> {
    if p == 0 || s == 0 {
        return Err("fanin needs at least one publisher and one subscriber".into());
    }
    check_streams(p as u64)?;
    let derived;
    let pattern = match (topic_pattern, filter) {
        (Some(t), _) => t,
        (None, Some(f)) => {
            derived = topic_for_filter(f)?;
            &derived
        }
        (None, None) => "bench/{run}/fanin/{i}",
    };
    let filter = match filter {
        Some(f) => f.replace("{run}", run),
        None => {
            if !pattern.split('/').any(|l| l == "{i}") {
                return Err(
                    "fanin: {i} must be a whole topic level to derive the filter; or give --filter"
                        .into(),
                );
            }
            pattern
                .split('/')
                .map(|l| if l == "{i}" { "+" } else { l })
                .collect::<Vec<_>>()
                .join("/")
                .replace("{run}", run)
        }
    };
    let publishers: Vec<PubSpec> = (0..p)
        .map(|i| PubSpec {
            targets: vec![Target {
                topic: bs(expand(pattern, run, i)),
                stream_offset: 0,
            }],
            miss_topics: vec![],
            miss_ratio: 0.0,
            fanout: s as u32,
            group: 0,
            closed_loop: false,
        })
        .collect();
    for pb in &publishers {
        if !matches(&filter, &pb.targets[0].topic) {
            return Err(format!(
                "fanin: filter {filter} does not match topic {}",
                &*pb.targets[0].topic
            ));
        }
    }
    let all = StreamSet {
        first: 0,
        stride: 1,
        count: p as u32,
    };
    let subscribers = (0..s)
        .map(|_| SubSpec {
            filters: vec![bs(filter.clone())],
            streams: all,
            stalled: false,
            qos: None,
        })
        .collect();
    Ok(Plan {
        scenario: "fanin",
        publishers,
        subscribers,
        idle: 0,
        streams_per_pub: 1,
        groups: all_group(),
        details: serde_json::json!({ "topic": pattern, "filter": filter }),
        description: format!(
            "{p} publishers on distinct topics ({pattern}) → {s} subscriber(s) on {filter}"
        ),
    })
}

/// A topic pattern for `--filter` alone: its first `+` level becomes `{i}` (`t/+` → `t/{i}`),
/// or a trailing `#` becomes `{i}` (`t/#` → `t/{i}`), so each publisher gets its own topic.
pub fn topic_for_filter(filter: &str) -> Result<String, String> {
    let mut levels: Vec<&str> = filter.split('/').collect();
    if let Some(l) = levels.iter_mut().find(|l| **l == "+") {
        *l = "{i}";
    } else if levels.last() == Some(&"#") {
        *levels.last_mut().expect("non-empty") = "{i}";
    } else {
        return Err(format!(
            "fanin: --filter {filter} has no + or trailing # level for per-publisher topics; give --topic"
        ));
    }
    Ok(levels.join("/").replace('+', "x").replace("/#", "/x"))
}

/// Shape of the `stalled` scenario.
#[derive(Debug, Clone)]
pub struct StalledShape {
    /// Healthy publisher→subscriber pairs, each on its own topic.
    pub pairs: usize,
    /// Publishers into the stalled topic (all on the one topic).
    pub stalled_publishers: usize,
    /// Subscribers of the stalled topic that stop reading after SUBACK.
    pub stalled_subscribers: usize,
    /// Subscription QoS of the stalled subscribers.
    pub stalled_qos: u8,
    /// Topic prefix ({run} = run id): pairs on `<prefix>/ok/{i}`, the stalled topic is
    /// `<prefix>/stalled`.
    pub prefix: String,
}

/// Group indices of the `stalled` plan.
pub const GROUP_HEALTHY: u8 = 0;
pub const GROUP_STALLED: u8 = 1;

/// `stalled`: N healthy pairs (as `pairs`) beside one topic whose subscriber(s) subscribe and
/// then never read their socket again, fed by closed-loop publishers with deep windows. The
/// stalled topic's messages are expected nowhere (no subscriber can receive them), so its
/// publishers have no end-to-end window: only the broker's acknowledgements pace them.
pub fn stalled(shape: &StalledShape, run: &str) -> Result<Plan, String> {
    let StalledShape {
        pairs: n,
        stalled_publishers: sp,
        stalled_subscribers: ss,
        ..
    } = *shape;
    if sp == 0 || ss == 0 {
        return Err("stalled needs at least one stalled publisher and subscriber".into());
    }
    check_streams((n + sp) as u64)?;
    let prefix = shape.prefix.replace("{run}", run);
    let stalled_topic = bs(format!("{prefix}/stalled"));
    let mut publishers = Vec::with_capacity(n + sp);
    let mut subscribers = Vec::with_capacity(n + ss);
    for i in 0..n {
        let (s, p) = pair(bs(format!("{prefix}/ok/{i}")), i, GROUP_HEALTHY);
        subscribers.push(s);
        publishers.push(p);
    }
    for _ in 0..sp {
        publishers.push(PubSpec {
            targets: vec![Target {
                topic: stalled_topic.clone(),
                stream_offset: 0,
            }],
            miss_topics: vec![],
            miss_ratio: 0.0,
            fanout: 0,
            group: GROUP_STALLED,
            closed_loop: true,
        });
    }
    for _ in 0..ss {
        subscribers.push(SubSpec {
            filters: vec![stalled_topic.clone()],
            streams: StreamSet {
                first: 0,
                stride: 1,
                count: 0,
            },
            stalled: true,
            qos: Some(shape.stalled_qos),
        });
    }
    Ok(Plan {
        scenario: "stalled",
        publishers,
        subscribers,
        idle: 0,
        streams_per_pub: 1,
        groups: vec!["healthy".into(), "stalled-topic".into()],
        details: serde_json::json!({
            "pairs": n,
            "stalled_publishers": sp,
            "stalled_subscribers": ss,
            "stalled_qos": shape.stalled_qos,
            "healthy_topics": format!("{prefix}/ok/{{i}}"),
            "stalled_topic": &*stalled_topic,
        }),
        description: format!(
            "{n} healthy pairs ({prefix}/ok/{{i}}) beside {sp} publisher(s) → {} with {ss} subscriber(s) that never read",
            &*stalled_topic
        ),
    })
}

/// `fanout`: P publishers (default 1) on one topic, S subscribers on that topic.
pub fn fanout(p: usize, s: usize, topic: Option<&str>, run: &str) -> Result<Plan, String> {
    if p == 0 || s == 0 {
        return Err("fanout needs at least one publisher and one subscriber".into());
    }
    check_streams(p as u64)?;
    let topic = bs(expand(topic.unwrap_or("bench/{run}/fanout"), run, 0));
    let publishers = (0..p)
        .map(|_| PubSpec {
            targets: vec![Target {
                topic: topic.clone(),
                stream_offset: 0,
            }],
            miss_topics: vec![],
            miss_ratio: 0.0,
            fanout: s as u32,
            group: 0,
            closed_loop: false,
        })
        .collect();
    let all = StreamSet {
        first: 0,
        stride: 1,
        count: p as u32,
    };
    let subscribers = (0..s)
        .map(|_| SubSpec {
            filters: vec![topic.clone()],
            streams: all,
            stalled: false,
            qos: None,
        })
        .collect();
    Ok(Plan {
        scenario: "fanout",
        publishers,
        subscribers,
        idle: 0,
        streams_per_pub: 1,
        groups: all_group(),
        details: serde_json::json!({ "topic": &*topic }),
        description: format!("{p} publisher(s) → one topic {} → {s} subscribers", &*topic),
    })
}

/// Shape of the `wildcard` scenario.
#[derive(Debug, Clone)]
pub struct WildcardShape {
    pub filters: usize,
    pub subscribers: usize,
    pub publishers: usize,
    /// Fraction of the filters that traffic hits.
    pub hit_fraction: f64,
    /// Fraction of messages sent to topics matching no filter.
    pub miss_ratio: f64,
    /// Relative weights of exact, `+` and `#` filters.
    pub mix: (u32, u32, u32),
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    Exact,
    Plus,
    Hash,
}

/// Filter `i` and the one topic that hits it. Filters never overlap: `i` = 1000·a + b names
/// bucket `a` and slot `b`; the topic of filter i is `P/a/b/tb` and
/// - exact: `P/a/b/tb`
/// - plus:  `P/a/+/tb` (the only published topic in bucket a ending in `tb` is slot b's)
/// - hash:  `P/a/b/#`
///
/// so each hit topic is delivered to exactly one subscription, while the broker still walks a
/// multi-level tree with `+` and `#` branches. Miss topics use indices ≥ the filter count:
/// same prefix and buckets, no filter.
pub fn wildcard_filter(prefix: &str, i: usize, kind: FilterKind) -> (String, String) {
    let (a, b) = (i / 1000, i % 1000);
    let topic = format!("{prefix}/{a}/{b}/t{b}");
    let filter = match kind {
        FilterKind::Exact => topic.clone(),
        FilterKind::Plus => format!("{prefix}/{a}/+/t{b}"),
        FilterKind::Hash => format!("{prefix}/{a}/{b}/#"),
    };
    (filter, topic)
}

/// Kind of filter `i` for a mix, spread by a multiplicative hash so kinds are independent of
/// which subscriber (i mod S) owns the filter.
pub fn filter_kind(i: usize, mix: (u32, u32, u32)) -> FilterKind {
    let total = u64::from(mix.0 + mix.1 + mix.2).max(1);
    let h = ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) % total;
    if h < u64::from(mix.0) {
        FilterKind::Exact
    } else if h < u64::from(mix.0 + mix.1) {
        FilterKind::Plus
    } else {
        FilterKind::Hash
    }
}

/// `wildcard`: F filters spread over S subscribers (filter i → subscriber i mod S), loaded
/// before traffic; P publishers send to the topics of a `hit_fraction` of the filters
/// (spread evenly over the index range) plus, optionally, to topics that match nothing.
/// Stream = publisher × S + owning subscriber, so each subscriber sees P gap-free streams.
pub fn wildcard(shape: &WildcardShape, run: &str) -> Result<Plan, String> {
    let WildcardShape {
        filters: f,
        subscribers: s,
        publishers: p,
        hit_fraction,
        miss_ratio,
        mix,
        ..
    } = *shape;
    if f == 0 || s == 0 || p == 0 {
        return Err("wildcard needs filters, subscribers and publishers > 0".into());
    }
    if !(hit_fraction > 0.0 && hit_fraction <= 1.0) {
        return Err("--hit-fraction must be in (0, 1]".into());
    }
    if !(0.0..1.0).contains(&miss_ratio) {
        return Err("--miss-ratio must be in [0, 1)".into());
    }
    if mix.0 + mix.1 + mix.2 == 0 {
        return Err("--mix needs a non-zero weight".into());
    }
    check_streams((p * s) as u64)?;
    let prefix = shape.prefix.replace("{run}", run);
    let hot = ((f as f64 * hit_fraction).round() as usize).clamp(1, f);
    if hot < p {
        return Err(format!(
            "wildcard: only {hot} filters are hit but there are {p} publishers; raise --hit-fraction or lower --publishers"
        ));
    }
    let mut subscribers: Vec<SubSpec> = (0..s)
        .map(|si| SubSpec {
            filters: Vec::with_capacity(f / s + 1),
            streams: StreamSet {
                first: si as u32,
                stride: s as u32,
                count: p as u32,
            },
            stalled: false,
            qos: None,
        })
        .collect();
    let mut kinds = [0usize; 3];
    for i in 0..f {
        let kind = filter_kind(i, mix);
        kinds[kind as usize] += 1;
        let (filter, _) = wildcard_filter(&prefix, i, kind);
        subscribers[i % s].filters.push(bs(filter));
    }
    let mut publishers: Vec<PubSpec> = (0..p)
        .map(|_| PubSpec {
            targets: Vec::new(),
            miss_topics: Vec::new(),
            miss_ratio,
            fanout: 1,
            group: 0,
            closed_loop: false,
        })
        .collect();
    for j in 0..hot {
        let i = j * f / hot;
        let kind = filter_kind(i, mix);
        let (filter, topic) = wildcard_filter(&prefix, i, kind);
        debug_assert!(matches(&filter, &topic));
        publishers[j % p].targets.push(Target {
            topic: bs(topic),
            stream_offset: (i % s) as u32,
        });
    }
    if miss_ratio > 0.0 {
        const MISS_TOPICS_PER_PUB: usize = 64;
        for (pi, pb) in publishers.iter_mut().enumerate() {
            for k in 0..MISS_TOPICS_PER_PUB {
                let (_, topic) =
                    wildcard_filter(&prefix, f + pi * MISS_TOPICS_PER_PUB + k, FilterKind::Exact);
                pb.miss_topics.push(bs(topic));
            }
        }
    }
    Ok(Plan {
        scenario: "wildcard",
        publishers,
        subscribers,
        idle: 0,
        streams_per_pub: s as u32,
        groups: all_group(),
        details: serde_json::json!({
            "filters": f,
            "filters_exact": kinds[0],
            "filters_plus": kinds[1],
            "filters_hash": kinds[2],
            "filters_hit": hot,
            "hit_fraction": hot as f64 / f as f64,
            "miss_ratio": miss_ratio,
            "prefix": prefix,
        }),
        description: format!(
            "{f} filters ({} exact, {} +, {} #) over {s} subscribers; {p} publishers hit {hot} of them ({:.1}%){}",
            kinds[0],
            kinds[1],
            kinds[2],
            hot as f64 * 100.0 / f as f64,
            if miss_ratio > 0.0 {
                format!(", {:.0}% of messages match nothing", miss_ratio * 100.0)
            } else {
                String::new()
            }
        ),
    })
}

/// `conns`: C idle connections.
pub fn conns(c: usize) -> Result<Plan, String> {
    if c == 0 {
        return Err("--connections must be at least 1".into());
    }
    Ok(Plan {
        scenario: "conns",
        publishers: vec![],
        subscribers: vec![],
        idle: c,
        streams_per_pub: 1,
        groups: all_group(),
        details: serde_json::json!({ "connections": c }),
        description: format!("{c} idle connections"),
    })
}

/// Parse a mix such as `1:1:1` or `60:30:10` (exact : plus : hash).
pub fn parse_mix(s: &str) -> Result<(u32, u32, u32), String> {
    let parts: Vec<u32> = s
        .split(':')
        .map(|x| x.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("--mix {s:?}: expected three integers like 1:1:1"))?;
    match parts[..] {
        [a, b, c] => Ok((a, b, c)),
        _ => Err(format!("--mix {s:?}: expected exact:plus:hash")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_matching() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("#", "a/b"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(matches("+/+", "/x"));
    }

    #[test]
    fn fanin_derives_filter() {
        let p = fanin(3, 2, None, None, "r1").unwrap();
        assert_eq!(&*p.subscribers[0].filters[0], "bench/r1/fanin/+");
        assert_eq!(&*p.publishers[2].targets[0].topic, "bench/r1/fanin/2");
        assert_eq!(p.publishers[0].fanout, 2);
        assert!(fanin(3, 1, Some("x/{i}"), Some("y/+"), "r").is_err());
        assert!(fanin(3, 1, Some("x/a{i}"), None, "r").is_err());
        // --filter alone: the topics are derived from it.
        let p = fanin(8, 1, None, Some("t/+"), "r").unwrap();
        assert_eq!(&*p.publishers[7].targets[0].topic, "t/7");
        assert_eq!(&*p.subscribers[0].filters[0], "t/+");
        assert_eq!(topic_for_filter("a/+/b/+").unwrap(), "a/{i}/b/x");
        assert_eq!(topic_for_filter("a/#").unwrap(), "a/{i}");
        assert!(topic_for_filter("a/b").is_err());
    }

    #[test]
    fn stalled_plan_separates_the_stalled_topic() {
        let shape = StalledShape {
            pairs: 3,
            stalled_publishers: 2,
            stalled_subscribers: 1,
            stalled_qos: 1,
            prefix: "b/{run}".into(),
        };
        let p = stalled(&shape, "r").unwrap();
        assert_eq!(p.publishers.len(), 5);
        assert_eq!(p.subscribers.len(), 4);
        let slow = &p.publishers[3];
        assert_eq!(
            (slow.group, slow.fanout, slow.closed_loop),
            (GROUP_STALLED, 0, true)
        );
        assert_eq!(&*slow.targets[0].topic, "b/r/stalled");
        let s = &p.subscribers[3];
        assert!(s.stalled && s.streams.count == 0);
        assert!(matches(&s.filters[0], &slow.targets[0].topic));
        // No healthy subscriber sees the stalled topic, and vice versa.
        for (i, sub) in p.subscribers[..3].iter().enumerate() {
            assert!(!sub.stalled);
            assert!(!matches(&sub.filters[0], &slow.targets[0].topic));
            assert!(sub.streams.contains(i as u32));
            assert_eq!(p.publishers[i].group, GROUP_HEALTHY);
        }
    }

    #[test]
    fn wildcard_hits_exactly_the_planned_filters() {
        let shape = WildcardShape {
            filters: 3000,
            subscribers: 7,
            publishers: 3,
            hit_fraction: 0.1,
            miss_ratio: 0.2,
            mix: (1, 1, 1),
            prefix: "w/{run}".into(),
        };
        let plan = wildcard(&shape, "r").unwrap();
        let all: Vec<(usize, &str)> = plan
            .subscribers
            .iter()
            .enumerate()
            .flat_map(|(si, s)| s.filters.iter().map(move |f| (si, &**f)))
            .collect();
        assert_eq!(all.len(), 3000);
        let mut hit = 0;
        for (pi, pb) in plan.publishers.iter().enumerate() {
            for t in &pb.targets {
                let owners: Vec<usize> = all
                    .iter()
                    .filter(|(_, f)| matches(f, &t.topic))
                    .map(|(s, _)| *s)
                    .collect();
                assert_eq!(owners.len(), 1, "{} matched {owners:?}", &*t.topic);
                assert_eq!(owners[0] as u32, t.stream_offset);
                let stream = pi as u32 * plan.streams_per_pub + t.stream_offset;
                assert!(plan.subscribers[owners[0]].streams.contains(stream));
                hit += 1;
            }
            for m in &pb.miss_topics {
                assert!(all.iter().all(|(_, f)| !matches(f, m)), "{}", &**m);
            }
        }
        assert_eq!(hit, 300);
        let d = &plan.details;
        assert_eq!(d["filters_hit"], 300);
        let kinds = d["filters_exact"].as_u64().unwrap()
            + d["filters_plus"].as_u64().unwrap()
            + d["filters_hash"].as_u64().unwrap();
        assert_eq!(kinds, 3000);
        assert!(d["filters_plus"].as_u64().unwrap() > 800);
    }

    #[test]
    fn mix_parsing() {
        assert_eq!(parse_mix("60:30:10").unwrap(), (60, 30, 10));
        assert!(parse_mix("1:1").is_err());
    }
}
