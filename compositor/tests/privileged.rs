//! Privileged globals against real clients: Debian's grim takes a screenshot over
//! wlr-screencopy, and wayland-info and grim run inside a security context (made the
//! way Flatpak makes one) see only what the sandbox policy grants.

mod common;

use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use common::{Session, differing};
use tessera_protocols::{GLOBALS, PrivilegeClass};
use wayland_client::globals::{GlobalListContents, registry_queue_init};
use wayland_client::protocol::wl_registry;
use wayland_client::{Connection, Dispatch, QueueHandle, delegate_noop};
use wayland_protocols::wp::security_context::v1::client::{
    wp_security_context_manager_v1::WpSecurityContextManagerV1,
    wp_security_context_v1::WpSecurityContextV1,
};

struct Engine;

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for Engine {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}
delegate_noop!(Engine: ignore WpSecurityContextManagerV1);
delegate_noop!(Engine: ignore WpSecurityContextV1);

/// A security context's socket, held open the way a sandbox engine holds it.
struct Sandbox {
    socket: PathBuf,
    _conn: Connection,
    _close: UnixStream,
}

fn sandbox(session: &Session, engine: &str, app_id: &str) -> Sandbox {
    let display = session.runtime.path().join(&session.display);
    let conn = Connection::from_socket(UnixStream::connect(display).unwrap()).unwrap();
    let (globals, mut queue) = registry_queue_init::<Engine>(&conn).unwrap();
    let qh = queue.handle();
    let manager: WpSecurityContextManagerV1 = globals.bind(&qh, 1..=1, ()).unwrap();
    let socket = session.runtime.path().join(format!("sandbox-{app_id}"));
    let listener = UnixListener::bind(&socket).unwrap();
    let (close, close_theirs) = UnixStream::pair().unwrap();
    let ctx = manager.create_listener(listener.as_fd(), close_theirs.as_fd(), &qh, ());
    ctx.set_sandbox_engine(engine.into());
    ctx.set_app_id(app_id.into());
    ctx.set_instance_id("1".into());
    ctx.commit();
    queue.roundtrip(&mut Engine).unwrap();
    Sandbox {
        socket,
        _conn: conn,
        _close: close,
    }
}

fn grim(
    session: &Session,
    socket: Option<&PathBuf>,
    out: &std::path::Path,
) -> std::process::Output {
    let mut cmd = session.client("grim", &[out.to_str().unwrap()]);
    if let Some(s) = socket {
        cmd.env("WAYLAND_DISPLAY", s);
    }
    cmd.output().expect("grim runs")
}

#[test]
fn grim_takes_the_same_screenshot_as_tessera_msg() {
    let mut session = Session::start("pixman", "800x600");
    let dir = tempfile::tempdir().unwrap();
    // foot draws once and then holds still (no cursor blink by default).
    session.spawn("foot", &["-o", "cursor.blink=no"]);
    session.wait_windows("foot to map", |w| {
        w.iter()
            .any(|w| w.app_id.as_deref() == Some("foot") && w.geometry.is_some())
    });
    std::thread::sleep(Duration::from_millis(1500));
    let ours = session.screenshot(dir.path(), "tessera.png");
    let path = dir.path().join("grim.png");
    let out = grim(&session, None, &path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = tessera::screenshot::read_png(&path).unwrap();
    assert_eq!((theirs.width, theirs.height), (800, 600));
    let n = differing(&ours, &theirs, 0, 0, 800, 600, 0);
    assert_eq!(
        n, 0,
        "{n} pixels differ between grim and tessera msg screenshot"
    );
    // And the picture is not trivially uniform: foot's prompt is in it.
    let bg = ours.pixel(799, 599);
    let drawn = differing(&ours, &filled(&ours, bg), 0, 0, 800, 600, 0);
    assert!(drawn > 50, "only {drawn} pixels differ from the corner");
}

/// A capture of the same size filled with one colour.
fn filled(c: &tessera::backend::Capture, rgba: [u8; 4]) -> tessera::backend::Capture {
    tessera::backend::Capture {
        width: c.width,
        height: c.height,
        rgba: rgba.repeat((c.width * c.height) as usize),
    }
}

#[test]
fn wayland_info_in_a_sandbox_sees_no_privileged_global() {
    let session = Session::start("pixman", "640x480");
    let sb = sandbox(&session, "org.flatpak", "org.example.Viewer");
    let out = session
        .client("wayland-info", &[])
        .env("WAYLAND_DISPLAY", &sb.socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = common::wayland_info_interfaces(&out.stdout);
    for spec in GLOBALS {
        let public = spec.class == PrivilegeClass::Public;
        assert_eq!(
            seen.iter().any(|s| s == spec.interface),
            public,
            "{} ({:?}) through the sandbox",
            spec.interface,
            spec.class
        );
    }
    // Outside the sandbox, everything is there.
    let out = session.client("wayland-info", &[]).output().unwrap();
    let seen = common::wayland_info_interfaces(&out.stdout);
    assert!(
        GLOBALS
            .iter()
            .all(|g| seen.iter().any(|s| s == g.interface))
    );
}

#[test]
fn grim_in_a_sandbox_needs_a_screen_capture_rule() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("compositor.toml");
    std::fs::write(
        &config,
        "[[security.rule]]\nengine = \"org.flatpak\"\napp_id = \"org.gnome.Snapshot\"\n\
         allow = [\"screen-capture\"]\n",
    )
    .unwrap();
    let session = Session::start_with("pixman", "640x480", &["--config", config.to_str().unwrap()]);
    let denied = sandbox(&session, "org.flatpak", "org.example.Other");
    let granted = sandbox(&session, "org.flatpak", "org.gnome.Snapshot");

    let out = grim(
        &session,
        Some(&denied.socket),
        &dir.path().join("denied.png"),
    );
    assert!(!out.status.success());
    assert!(!dir.path().join("denied.png").exists());

    let out = grim(
        &session,
        Some(&granted.socket),
        &dir.path().join("granted.png"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shot = tessera::screenshot::read_png(&dir.path().join("granted.png")).unwrap();
    assert_eq!((shot.width, shot.height), (640, 480));

    // `tessera msg clients` names the denied app and what it was denied.
    let r = session.msg(tessera::ipc::proto::Request::Clients);
    let clients: Vec<tessera::sandbox::ClientInfo> = serde_json::from_value(r.data).unwrap();
    assert!(clients.iter().any(|c| !c.sandboxed && c.pid.is_some()));
    // grim has exited; its denials were listed while it was connected, so check a
    // client that stays: wayland-info is gone too, so connect one ourselves.
    let _held = UnixStream::connect(&denied.socket).unwrap();
    let listed = common::poll("the sandboxed connection to be listed", || {
        let r = session.msg(tessera::ipc::proto::Request::Clients);
        let clients: Vec<tessera::sandbox::ClientInfo> = serde_json::from_value(r.data).unwrap();
        clients.into_iter().find(|c| c.sandboxed)
    });
    assert_eq!(listed.engine.as_deref(), Some("org.flatpak"));
    assert_eq!(listed.app_id.as_deref(), Some("org.example.Other"));
    assert_eq!(listed.instance_id.as_deref(), Some("1"));
}
