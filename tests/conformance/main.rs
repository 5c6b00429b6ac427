//! MQTT conformance suite: one test per normative statement of the MQTT 5.0 specification (and
//! the MQTT 3.1.1 statements where the broker behaves differently per version), run over real
//! TCP against the real `ringmq` binary on loopback.
//!
//! Test names carry the statement they check: `mqtt_3_3_1_4_qos3_publish_is_malformed` checks
//! [MQTT-3.3.1-4]; `mqtt311_...` checks a 3.1.1 statement; `sec_3_14_2_2_2_...` checks a
//! requirement of that section that has no statement number. `docs/CONFORMANCE.md` maps every
//! statement to its test (or says why there is none).
//!
//! Packet-level checks use [`fixture::Raw`], a client that writes and reads packets through the
//! codec (or literal bytes for malformed input). Normal flows and interoperation also use a
//! third-party client (rumqttc, see [`third_party`]).
//!
//! Most tests run against a 1-shard broker. Shared subscriptions and cross-client flows run with
//! 1 and 2 shards (`shard_tests!`), with client ids chosen so that the clients live on different
//! shards.

/// For each `async fn name(shards: usize)`: tests `name::shards_1` and `name::shards_2`.
/// Attributes before a name (e.g. `#[ignore = "..."]`) go on both tests.
macro_rules! shard_tests {
    ($($(#[$attr:meta])* $name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            $(#[$attr])*
            async fn shards_1() {
                super::$name(1).await
            }
            #[tokio::test]
            $(#[$attr])*
            async fn shards_2() {
                super::$name(2).await
            }
        }
    )+};
}

#[path = "../support/broker_process.rs"]
mod broker_process;
mod fixture;
#[path = "../support/raw_client.rs"]
mod raw_client;
mod third_party;
#[path = "../support/ws_raw.rs"]
mod ws_raw;

mod edges;
mod interop;
mod s1_data;
mod s2_format;
mod s3_01_connect;
mod s3_02_connack;
mod s3_03_publish;
mod s3_04_acks;
mod s3_08_subscribe;
mod s3_10_unsubscribe;
mod s3_12_ping_disconnect_auth;
mod s4_01_session;
mod s4_03_qos;
mod s4_06_ordering;
mod s4_07_topics;
mod s4_08_shared;
mod s4_09_flow;
mod s4_12_auth;
mod s4_13_errors;
mod s6_websocket;
mod v311;
