//! Socket creation for benchmark clients.
//!
//! Every client socket is non-blocking with TCP_NODELAY (the generator batches its own writes;
//! Nagle would only add delay). For the `conns` scenario a client can be bound to one of
//! several 127.0.0.x source addresses: each source address has its own ephemeral port space,
//! so C connections to one broker port are not capped by `ip_local_port_range` (~28 k).
//! `IP_BIND_ADDRESS_NO_PORT` defers the port choice to `connect()` so the kernel picks it per
//! 4-tuple instead of reserving it at `bind()`.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Linux `IP_BIND_ADDRESS_NO_PORT` (not exported by every libc version).
const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;

/// Start a non-blocking connect to `broker`, optionally from `source`. The connection is
/// usually still in progress when this returns.
pub fn start_connect(
    broker: SocketAddr,
    source: Option<IpAddr>,
) -> io::Result<mio::net::TcpStream> {
    let domain = if broker.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock = Socket::new(
        domain,
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    sock.set_nodelay(true)?;
    if let Some(src) = source {
        if src.is_ipv4() {
            let one: libc::c_int = 1;
            // SAFETY: valid socket fd and a c_int option value of the right size.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&sock),
                    libc::IPPROTO_IP,
                    IP_BIND_ADDRESS_NO_PORT,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        sock.bind(&SocketAddr::new(src, 0).into())?;
    }
    match sock.connect(&broker.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(sock.into()))
}

/// `n` loopback source addresses: 127.0.0.1, 127.0.0.2, ... (the whole 127/8 is loopback on
/// Linux, no configuration needed).
pub fn loopback_sources(n: usize) -> Vec<IpAddr> {
    (0..n.clamp(1, 250))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8)))
        .collect()
}

/// Source addresses needed for `conns` connections: one per ~80% of the ephemeral range.
pub fn sources_needed(conns: usize) -> usize {
    let (lo, hi) = crate::sysinfo::ephemeral_ports();
    let per_ip = ((usize::from(hi) - usize::from(lo) + 1) * 8 / 10).max(1000);
    conns.div_ceil(per_ip).max(1)
}

/// Resolve `host:port` (first address).
pub fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("cannot resolve {host}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        let s = loopback_sources(3);
        assert_eq!(s[2], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(sources_needed(10), 1);
        assert!(sources_needed(100_000) >= 4);
    }

    #[test]
    fn connects_from_second_loopback_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let _s = start_connect(addr, Some(loopback_sources(2)[1])).unwrap();
        let (_c, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    }
}
