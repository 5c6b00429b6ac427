//! Integration tests of the `ringmq` broker process on loopback, organised by area like
//! Mosquitto's suite. Every behaviour runs against a broker with 1 shard and with 2 shards (with
//! two, client ids are chosen so that publishers and subscribers live on different shards, and
//! the kernel spreads accepted connections so that hand-over to the home shard happens too), and,
//! where the behaviour exists in both, with MQTT 3.1.1 and MQTT 5.0 clients.
//!
//! Normal flows use a third-party client (rumqttc); packet-level flows, MQTT 3.1 and bad input
//! use a raw client built on the codec. See `common.rs` for the fixtures.
//!
//! Test names: `<area>::<behaviour>::<variant>`, the behaviour named after the specification
//! statement it checks (e.g. `mqtt_3_1_2_24_...`), the variant `v3_1shard`, `v5_2shards`, ... or
//! `with_1shard` / `with_2shards`.
//!
//! `RINGMQ_TEST_LOG=debug cargo test --test broker NAME` shows the broker's own log.

/// For each `async fn name(shards: usize)`: tests `name::with_1shard` and `name::with_2shards`.
macro_rules! shard_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn with_1shard() {
                crate::common::bounded(super::$name(1)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn with_2shards() {
                crate::common::bounded(super::$name(2)).await
            }
        }
    )+};
}

/// For each `async fn name(v: Version, shards: usize)`: tests `name::v3_1shard`,
/// `name::v3_2shards`, `name::v5_1shard` and `name::v5_2shards`.
macro_rules! version_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use crate::common::{bounded, Version::{V3, V5}};
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v3_1shard() {
                bounded(super::$name(V3, 1)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v3_2shards() {
                bounded(super::$name(V3, 2)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v5_1shard() {
                bounded(super::$name(V5, 1)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v5_2shards() {
                bounded(super::$name(V5, 2)).await
            }
        }
    )+};
}

#[path = "../support/broker_process.rs"]
mod broker_process;
mod common;
#[path = "../support/raw_client.rs"]
mod raw_client;
mod t01_connect;
mod t02_subpub;
mod t03_qos;
mod t04_retain;
mod t05_session;
mod t06_will;
mod t07_limits;
mod t08_shards;
mod t09_overload;
mod t10_shutdown;
mod t11_tls;
mod t12_access;
mod t13_malformed;
mod t14_hostile;
mod t15_auth;
mod t16_durable;
mod t16_give_back;
mod t17_websocket;
mod t18_http;
mod t18_sys;
mod t19_hibernate;
#[path = "../support/ws_raw.rs"]
mod ws_raw;
