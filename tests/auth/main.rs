//! Interoperability of ringmq's auth files with the real Mosquitto: a password file written by
//! `ringmq passwd` is accepted by Mosquitto, and (in `acl.rs`) ringmq's ACL decisions match
//! Mosquitto's for the same `acl_file`. Skipped with a message when Mosquitto is absent.
//! Loopback only, ports leased like every other suite, every process bounded in time.

// Only PortLease is used here; the module's own port-race test needs raw_client.
#[allow(dead_code)]
#[path = "../support/broker_process.rs"]
mod broker_process;
#[allow(dead_code)]
#[path = "../support/raw_client.rs"]
mod raw_client;

mod acl;
mod mosquitto;
mod passwd;
