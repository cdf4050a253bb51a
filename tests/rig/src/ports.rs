//! Free loopback ports.

use std::net::{Ipv4Addr, TcpListener};

/// A loopback port that was free a moment ago. The listener is dropped before the
/// service binds, so there is a small race; callers retry on a bind failure.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Two consecutive free ports `N` and `N + 1`: swtpm's TCTI in tpm2-tools assumes the
/// control port is the data port plus one.
pub fn free_port_pair() -> std::io::Result<u16> {
    for _ in 0..64 {
        let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = first.local_addr()?.port();
        if port == u16::MAX {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other(
        "no two consecutive free loopback ports",
    ))
}

/// Whether something accepts TCP connections on the loopback port.
pub fn is_listening(port: u16) -> bool {
    std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
}
