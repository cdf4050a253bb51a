//! systemd readiness: the real binary, as `Type=notify` starts it, says
//! `READY=1` on the socket in NOTIFY_SOCKET once clients can connect.

use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn tessera_says_ready_once_clients_can_connect() {
    let runtime = tempfile::tempdir().unwrap();
    let notify = runtime.path().join("notify");
    let listener = UnixDatagram::bind(&notify).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["--backend", "headless", "--renderer", "pixman"])
        .args(["--outputs", "640x480", "--socket", "wayland-notify"])
        .args(["--no-autostart", "--exit-after", "60"])
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env("NOTIFY_SOCKET", &notify)
        .env("TESSERA_NO_EXPORT", "1")
        .env("RUST_LOG", "warn")
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::null())
        .spawn()
        .expect("tessera starts");
    let mut buf = [0u8; 256];
    let got = listener.recv(&mut buf);
    // Connect before the process goes, so "ready" is checked while it holds.
    let connected = UnixStream::connect(runtime.path().join("wayland-notify"));
    let _ = child.kill();
    let _ = child.wait();
    let n = got.expect("READY=1 within 60 s");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(text.starts_with("READY=1\n"), "{text:?}");
    assert!(
        text.contains("STATUS=WAYLAND_DISPLAY=wayland-notify"),
        "{text:?}"
    );
    connected.expect("the Wayland socket accepts a client once ready");
}
