//! Listening sockets. Every shard binds its own socket on the same address with SO_REUSEPORT,
//! so the kernel spreads accepted connections across shards and accept needs no shared lock.

use super::connection;
use crate::shard::ctx::ShardCtx;
use glommio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

/// Bind one SO_REUSEPORT listener (called once per shard, before the executors start).
pub fn bind(addr: &str, backlog: u32) -> std::io::Result<std::net::TcpListener> {
    let addr: SocketAddr = addr.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}"))
    })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| std::io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket.into())
}

/// Accept forever on this shard's listener, one task per connection.
pub async fn accept_loop(ctx: ShardCtx, listener: std::net::TcpListener) {
    // SAFETY: the fd comes from a listening socket we own and give to glommio.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    loop {
        match listener.accept().await {
            Ok(stream) => {
                ctx.shard.borrow_mut().stats.connections += 1;
                glommio::spawn_local(connection::serve_new(ctx.clone(), stream)).detach();
            }
            Err(e) => {
                // EMFILE/ENFILE: out of descriptors. Back off instead of spinning; existing
                // clients keep being served.
                log::warn!("accept failed: {e} (see tuning/ for open-file limits)");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
