//! Binding TCP listeners (AMQP, the management API), the way RabbitMQ listens.

use std::net::SocketAddr;
use tokio::net::TcpListener;
use tracing::warn;

/// Binds a listener. The default, every IPv6 address (`[::]`), also takes IPv4 clients (a
/// dual-stack socket, as RabbitMQ listens): clients that resolve `localhost` to `::1` first,
/// as Node.js does, find the broker either way. Where IPv6 is not available that falls back
/// to every IPv4 address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Err(e) if addr.ip() == std::net::Ipv6Addr::UNSPECIFIED => {
            let v4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
            warn!("cannot listen on {addr} ({e}); listening on {v4}");
            TcpListener::bind(v4).await
        }
        r => r,
    }
}
