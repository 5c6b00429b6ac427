//! Unit tests of the member pick and the shared-filter parse ([`super`]).

use super::*;

fn group(n: usize) -> Group {
    Group {
        members: (0..n)
            .map(|i| Member {
                shard: 0,
                uid: i as u64 + 1,
                client_id: format!("m{i}").into(),
                qos: QoS::AtLeastOnce,
                identifier: None,
                online: true,
            })
            .collect(),
        next: 0,
        sticky: None,
    }
}

fn msg(origin: u64) -> Message {
    Message::owned(
        "t",
        b"",
        QoS::AtLeastOnce,
        false,
        crate::codec::Properties::default(),
        origin,
    )
}

fn picks(g: &mut Group, policy: SharePolicy, origin: u64, exclude: u64, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| pick(g, policy, &msg(origin), exclude).map_or(0, |m| m.uid))
        .collect()
}

#[test]
fn round_robin_takes_turns_and_skips_the_excluded() {
    let mut g = group(3);
    assert_eq!(
        picks(&mut g, SharePolicy::RoundRobin, 9, 0, 6),
        vec![1, 2, 3, 1, 2, 3]
    );
    let got = picks(&mut g, SharePolicy::RoundRobin, 9, 2, 4);
    assert!(got.iter().all(|&u| u == 1 || u == 3), "{got:?}");
}

#[test]
fn online_members_are_preferred_and_offline_ones_are_a_last_resort() {
    let mut g = group(2);
    g.members[0].online = false;
    assert_eq!(
        picks(&mut g, SharePolicy::RoundRobin, 9, 0, 3),
        vec![2, 2, 2]
    );
    assert_eq!(picks(&mut g, SharePolicy::RoundRobin, 9, 2, 1), vec![1]);
    let mut lone = group(1);
    assert_eq!(picks(&mut lone, SharePolicy::Random, 9, 1, 1), vec![0]);
}

#[test]
fn sticky_and_hash_client_keep_one_member() {
    let mut g = group(4);
    let s = picks(&mut g, SharePolicy::Sticky, 9, 0, 5);
    assert!(s.windows(2).all(|w| w[0] == w[1]));
    let a = picks(&mut g, SharePolicy::HashClient, 77, 0, 5);
    assert!(a.windows(2).all(|w| w[0] == w[1]));
    let spread: std::collections::HashSet<u64> = (0..64)
        .map(|o| picks(&mut g, SharePolicy::HashClient, o, 0, 1)[0])
        .collect();
    assert!(spread.len() > 1, "publishers spread over members");
}

#[test]
fn queue_prefix_and_share_prefix_parse() {
    assert_eq!(parse_shared("$queue/a/+"), Some(Ok(("$queue", "a/+"))));
    assert_eq!(parse_shared("$share/g/a/#"), Some(Ok(("g", "a/#"))));
    assert_eq!(parse_shared("$queue/a/#/b"), Some(Err(())));
    assert_eq!(parse_shared("a/b"), None);
}
