//! systemd readiness (sd_notify). Run as `Type=notify` (config/units/
//! tessera.service), tessera says `READY=1` once clients can connect and the
//! session environment is exported, so units ordered after it start against a
//! live session rather than a process that may still fail to find a GPU.

use std::ffi::OsStr;
use std::io;
use std::os::unix::net::UnixDatagram;

/// Tells the service manager the session is up. Without `NOTIFY_SOCKET`
/// (started by hand, or not as a notify service) there is no one to tell:
/// `Ok(false)`.
pub fn ready(status: &str) -> io::Result<bool> {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    send(&socket, &format!("READY=1\nSTATUS={status}\n"))?;
    Ok(true)
}

/// One datagram to the socket systemd named: a path, or an abstract name
/// written with a leading `@`.
fn send(socket: &OsStr, message: &str) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_bytes();
    let datagram = UnixDatagram::unbound()?;
    match bytes.first() {
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&bytes[1..])?;
            datagram.send_to_addr(message.as_bytes(), &addr)?;
        }
        Some(b'/') => {
            datagram.send_to(message.as_bytes(), socket)?;
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "NOTIFY_SOCKET={}: neither a path nor @abstract",
                    socket.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_reaches_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1\nSTATUS=up\n").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up\n");
    }

    #[test]
    fn readiness_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("tessera-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        send(OsStr::new(&format!("@{name}")), "READY=1\n").unwrap();
        let mut buf = [0u8; 16];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }

    #[test]
    fn a_relative_socket_is_refused() {
        let err = send(OsStr::new("notify"), "READY=1\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
