//! The `tessera msg` side of the IPC.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::proto::{Request, Response};

/// `--socket`, else $TESSERA_SOCKET, else the socket for $WAYLAND_DISPLAY.
pub fn socket_path(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TESSERA_SOCKET").map(PathBuf::from))
        .or_else(|| {
            let dir = std::env::var_os("XDG_RUNTIME_DIR")?;
            let display = std::env::var("WAYLAND_DISPLAY").ok()?;
            Some(PathBuf::from(dir).join(format!("tessera-{display}.sock")))
        })
}

/// Sends one request and waits for its answer.
pub fn send(socket: &Path, request: &Request) -> anyhow::Result<Response> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to {}: {e} (is tessera running?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer)?;
    if answer.is_empty() {
        anyhow::bail!("tessera closed the connection without answering");
    }
    Ok(serde_json::from_str(&answer)?)
}
