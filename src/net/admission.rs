//! Who may open a connection at all, decided at accept before a byte is read: the ban list,
//! the broker-wide connection cap, the per-address connection cap and the per-address
//! connection rate. A flood from one address is refused before it costs a task, a buffer or a
//! TLS handshake, and the rest of the broker does not notice.
//!
//! Owns: the counts, shared by every shard (SO_REUSEPORT spreads one address's connections over
//! all of them, so a per-shard count could not cap an address). They are touched once when a
//! connection opens and once when it closes, never per packet: one atomic for the total and a
//! short mutex-protected map for per-address state, only when a per-address limit is set. The
//! data path never sees them.
//! Never: blocks (the map's critical sections are a lookup and a few integer updates), or keeps
//! state for an address with nothing open and nothing to remember (entries are pruned).

use crate::config::Config;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Banned,
    /// `max_connections` open already.
    Total,
    /// `max_connections_per_address` open from this address already.
    PerAddress,
    /// Over `max_connection_rate_per_address` new connections per second.
    Rate,
}

impl Refusal {
    pub fn key(self) -> &'static str {
        match self {
            Refusal::Banned => "banned",
            Refusal::Total => "max_connections",
            Refusal::PerAddress => "max_connections_per_address",
            Refusal::Rate => "max_connection_rate_per_address",
        }
    }
}

#[derive(Debug)]
struct AddrState {
    open: u32,
    /// Token bucket of new connections: `rate` per second, up to `rate` at once.
    tokens: f64,
    refilled: Instant,
}

/// Refusal counters, by reason (for statistics and metrics).
#[derive(Debug, Default)]
pub struct Refused {
    pub banned: AtomicU64,
    pub total: AtomicU64,
    pub per_address: AtomicU64,
    pub rate: AtomicU64,
}

#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_address: u32,
    rate_per_address: u32,
    banned: Vec<IpNet>,
    open: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, AddrState>>,
    pub refused: Refused,
    /// Second (since start) of the last refusal log line: at most one per second.
    last_log_s: AtomicU64,
    started: Instant,
}

/// One admitted connection; dropping it (the connection ended, wherever it was served) gives
/// its place back. `Send`: it moves with a hand-over.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    addr: Option<IpAddr>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(a) = self.addr {
            if let Ok(mut map) = self.admission.per_address.lock() {
                if let Some(s) = map.get_mut(&a) {
                    s.open = s.open.saturating_sub(1);
                }
            }
        }
    }
}

/// Entries kept before idle ones are pruned.
const PRUNE_ABOVE: usize = 4096;

impl Admission {
    pub fn from_config(cfg: &Config) -> Result<Admission, String> {
        let banned = cfg
            .banned
            .iter()
            .map(|b| parse_net(b).ok_or_else(|| format!("banned: {b:?} is not an address or CIDR")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Admission {
            max_total: cfg.max_connections,
            max_per_address: cfg.max_connections_per_address,
            rate_per_address: cfg.max_connection_rate_per_address,
            banned,
            open: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            refused: Refused::default(),
            last_log_s: AtomicU64::new(u64::MAX),
            started: Instant::now(),
        })
    }

    /// Unlimited, nobody banned (tests, tools).
    pub fn open_door() -> Admission {
        Admission::from_config(&Config::default()).unwrap_or_else(|_| unreachable!())
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Admit a connection from `peer` at `now`, or say why not.
    pub fn admit(self: &Arc<Self>, peer: Option<IpAddr>, now: Instant) -> Result<Ticket, Refusal> {
        if let Some(ip) = peer {
            if self.banned.iter().any(|n| n.contains(&ip)) {
                return Err(self.refuse(Refusal::Banned, peer));
            }
        }
        let open = self.open.fetch_add(1, Ordering::Relaxed);
        // The ticket from here on gives the place back if anything below refuses.
        let mut ticket = Ticket {
            admission: self.clone(),
            addr: None,
        };
        if self.max_total > 0 && open >= self.max_total {
            drop(ticket);
            return Err(self.refuse(Refusal::Total, peer));
        }
        let Some(ip) = peer.filter(|_| self.max_per_address > 0 || self.rate_per_address > 0)
        else {
            return Ok(ticket);
        };
        let Ok(mut map) = self.per_address.lock() else {
            return Ok(ticket); // a poisoned map: admit rather than lock everyone out
        };
        if map.len() > PRUNE_ABOVE {
            let rate = f64::from(self.rate_per_address.max(1));
            map.retain(|_, s| {
                s.open > 0 || now.saturating_duration_since(s.refilled).as_secs_f64() * rate < rate
            });
        }
        let rate = f64::from(self.rate_per_address);
        let s = map.entry(ip).or_insert(AddrState {
            open: 0,
            tokens: rate,
            refilled: now,
        });
        if self.max_per_address > 0 && s.open >= self.max_per_address {
            drop(map);
            drop(ticket);
            return Err(self.refuse(Refusal::PerAddress, peer));
        }
        if self.rate_per_address > 0 {
            let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
            s.tokens = (s.tokens + elapsed * rate).min(rate);
            s.refilled = now;
            if s.tokens < 1.0 {
                drop(map);
                drop(ticket);
                return Err(self.refuse(Refusal::Rate, peer));
            }
            s.tokens -= 1.0;
        }
        s.open += 1;
        ticket.addr = Some(ip);
        Ok(ticket)
    }

    fn refuse(&self, why: Refusal, peer: Option<IpAddr>) -> Refusal {
        let c = match why {
            Refusal::Banned => &self.refused.banned,
            Refusal::Total => &self.refused.total,
            Refusal::PerAddress => &self.refused.per_address,
            Refusal::Rate => &self.refused.rate,
        };
        let n = c.fetch_add(1, Ordering::Relaxed) + 1;
        let now_s = self.started.elapsed().as_secs();
        if self.last_log_s.swap(now_s, Ordering::Relaxed) != now_s {
            log::warn!(
                "refused a connection from {} ({}; {n} refused for this reason so far)",
                peer.map_or_else(|| "?".to_string(), |p| p.to_string()),
                why.key()
            );
        }
        why
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn admission(tune: impl FnOnce(&mut Config)) -> Arc<Admission> {
        let mut cfg = Config::default();
        tune(&mut cfg);
        Arc::new(Admission::from_config(&cfg).expect("valid"))
    }

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));

    #[test]
    fn the_total_cap_counts_open_connections_and_tickets_give_back() {
        let a = admission(|c| c.max_connections = 2);
        let now = Instant::now();
        let t1 = a.admit(A, now).expect("first");
        let _t2 = a.admit(B, now).expect("second");
        assert_eq!(a.admit(A, now).unwrap_err(), Refusal::Total);
        drop(t1);
        assert!(a.admit(A, now).is_ok());
        assert_eq!(a.refused.total.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn one_address_is_capped_and_others_are_not() {
        let a = admission(|c| c.max_connections_per_address = 2);
        let now = Instant::now();
        let held: Vec<_> = (0..2)
            .map(|_| a.admit(A, now).expect("under cap"))
            .collect();
        assert_eq!(a.admit(A, now).unwrap_err(), Refusal::PerAddress);
        assert!(a.admit(B, now).is_ok());
        drop(held);
        assert!(a.admit(A, now).is_ok());
    }

    #[test]
    fn the_rate_refills_over_time() {
        let a = admission(|c| c.max_connection_rate_per_address = 10);
        let t0 = Instant::now();
        for _ in 0..10 {
            drop(a.admit(A, t0).expect("burst of 10"));
        }
        assert_eq!(a.admit(A, t0).unwrap_err(), Refusal::Rate);
        assert!(a.admit(B, t0).is_ok(), "another address has its own bucket");
        // 10 per second: after 0.5 s, five more.
        let later = t0 + Duration::from_millis(500);
        for _ in 0..5 {
            drop(a.admit(A, later).expect("refilled"));
        }
        assert_eq!(a.admit(A, later).unwrap_err(), Refusal::Rate);
    }

    #[test]
    fn banned_addresses_and_networks_are_refused() {
        let a = admission(|c| c.banned = vec!["192.0.2.1".into(), "10.0.0.0/8".into()]);
        let now = Instant::now();
        assert_eq!(a.admit(A, now).unwrap_err(), Refusal::Banned);
        assert_eq!(
            a.admit(Some("10.9.8.7".parse().expect("ip")), now)
                .unwrap_err(),
            Refusal::Banned
        );
        let held = a.admit(B, now).expect("not banned");
        assert_eq!(a.open_connections(), 1, "a refusal holds no place");
        drop(held);
        assert_eq!(a.open_connections(), 0);
        let cfg = Config {
            banned: vec!["not an address".into()],
            ..Config::default()
        };
        assert!(Admission::from_config(&cfg).is_err());
    }
}
