//! Security contexts: a client creates one, a second client connects through its
//! socket and is held to the sandbox policy.

use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use tessera_protocols::{GLOBALS, PrivilegeClass, SandboxRule};

use super::client::TestClient;
use super::fixture::Fixture;

/// A security context's socket, with the sandbox engine's end of close_fd.
struct Context {
    path: PathBuf,
    close: Option<OwnedFd>,
    _dir: tempfile::TempDir,
}

/// `creator` makes a context for `app_id` (engine `org.flatpak`, instance `i-1`).
fn create_context(fx: &mut Fixture, creator: &mut TestClient, app_id: &str) -> Context {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sandbox.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (close_ours, close_theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let manager = creator.data.security.clone().expect("manager bound");
    let ctx = manager.create_listener(
        std::os::fd::AsFd::as_fd(&listener),
        std::os::fd::AsFd::as_fd(&close_theirs),
        &creator.qh(),
        (),
    );
    ctx.set_sandbox_engine("org.flatpak".into());
    ctx.set_app_id(app_id.into());
    ctx.set_instance_id("i-1".into());
    ctx.commit();
    fx.roundtrip(creator);
    assert!(creator.data.protocol_error.is_none());
    // The compositor holds its own copies of both fds now.
    drop(listener);
    drop(close_theirs);
    Context {
        path,
        close: Some(close_ours.into()),
        _dir: dir,
    }
}

fn connect_sandboxed(fx: &mut Fixture, ctx: &Context) -> TestClient {
    let stream = UnixStream::connect(&ctx.path).unwrap();
    let mut c = TestClient::new(stream);
    fx.roundtrip(&mut c);
    c
}

fn seen(c: &TestClient) -> Vec<String> {
    let mut v: Vec<_> = c.data.globals.iter().map(|g| g.1.clone()).collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn every_advertised_global_is_in_the_table_at_its_version() {
    let mut fx = Fixture::new();
    let (c, _) = fx.add_client();
    let wrong: Vec<String> = c
        .data
        .globals
        .iter()
        .filter(|(_, interface, version)| {
            !GLOBALS
                .iter()
                .any(|g| g.interface == interface && g.version == *version)
        })
        .map(|(_, interface, version)| format!("{interface} v{version}"))
        .collect();
    assert!(wrong.is_empty(), "advertised but not in GLOBALS: {wrong:?}");
    for spec in GLOBALS {
        assert!(
            c.data.globals.iter().any(|g| g.1 == spec.interface),
            "{} is in GLOBALS but not advertised",
            spec.interface
        );
    }
}

#[test]
fn a_sandboxed_client_sees_public_globals_only() {
    let mut fx = Fixture::new();
    let (mut creator, _) = fx.add_client();
    let ctx = create_context(&mut fx, &mut creator, "org.example.App");
    let sandboxed = connect_sandboxed(&mut fx, &ctx);
    let seen_sandboxed = seen(&sandboxed);
    let seen_creator = seen(&creator);
    for spec in GLOBALS {
        assert!(seen_creator.iter().any(|g| g == spec.interface));
        let public = spec.class == PrivilegeClass::Public;
        assert_eq!(
            seen_sandboxed.iter().any(|g| g == spec.interface),
            public,
            "{} ({:?})",
            spec.interface,
            spec.class
        );
    }
    // The compositor knows who it is, and what it was denied, each global once.
    let infos = fx.state.client_infos();
    let info = infos
        .iter()
        .find(|i| i.sandboxed)
        .expect("sandboxed client listed");
    assert_eq!(info.engine.as_deref(), Some("org.flatpak"));
    assert_eq!(info.app_id.as_deref(), Some("org.example.App"));
    assert_eq!(info.instance_id.as_deref(), Some("i-1"));
    assert_eq!(info.pid, Some(std::process::id() as i32));
    let privileged = GLOBALS
        .iter()
        .filter(|g| g.class != PrivilegeClass::Public)
        .count();
    assert_eq!(info.denied.len(), privileged, "{:?}", info.denied);
    // A second registry re-evaluates but does not log (or list) a denial twice.
    let mut again = sandboxed;
    let _registry = again.conn.display().get_registry(&again.qh(), ());
    fx.roundtrip(&mut again);
    let infos = fx.state.client_infos();
    let info = infos.iter().find(|i| i.sandboxed).unwrap();
    assert_eq!(info.denied.len(), privileged);
    assert!(
        infos
            .iter()
            .filter(|i| !i.sandboxed)
            .all(|i| i.denied.is_empty())
    );
}

#[test]
fn a_policy_rule_grants_one_class_to_one_app() {
    let mut fx = Fixture::new();
    fx.state.sandbox.set_rules(vec![SandboxRule {
        engine: Some("org.flatpak".into()),
        app_id: Some("org.gnome.Snapshot".into()),
        allow: vec![PrivilegeClass::ScreenCapture, PrivilegeClass::LayerShell],
        deny: vec![],
    }]);
    let (mut creator, _) = fx.add_client();
    let snapshot = create_context(&mut fx, &mut creator, "org.gnome.Snapshot");
    let other = create_context(&mut fx, &mut creator, "org.other.App");
    let snap = seen(&connect_sandboxed(&mut fx, &snapshot));
    let oth = seen(&connect_sandboxed(&mut fx, &other));
    for spec in GLOBALS {
        let granted = matches!(
            spec.class,
            PrivilegeClass::Public | PrivilegeClass::ScreenCapture | PrivilegeClass::LayerShell
        );
        let public = spec.class == PrivilegeClass::Public;
        assert_eq!(
            snap.iter().any(|g| g == spec.interface),
            granted,
            "{}",
            spec.interface
        );
        assert_eq!(
            oth.iter().any(|g| g == spec.interface),
            public,
            "{}",
            spec.interface
        );
    }
}

#[test]
fn binding_a_hidden_global_by_a_guessed_name_is_an_error() {
    let mut fx = Fixture::new();
    let (mut creator, _) = fx.add_client();
    let ctx = create_context(&mut fx, &mut creator, "org.example.App");
    // The unrestricted client's registry tells us the name the sandbox does not see.
    let (name, _, _) = creator
        .data
        .globals
        .iter()
        .find(|g| g.1 == "zwlr_layer_shell_v1")
        .cloned()
        .unwrap();
    let mut sandboxed = connect_sandboxed(&mut fx, &ctx);
    assert!(!seen(&sandboxed).iter().any(|g| g == "zwlr_layer_shell_v1"));
    let _shell: wayland_protocols_wlr::layer_shell::v1::client::zwlr_layer_shell_v1::ZwlrLayerShellV1 =
        sandboxed.registry.bind(name, 4, &sandboxed.qh(), ());
    fx.roundtrip(&mut sandboxed);
    // wayland-server answers with a wl_display error and disconnects the client.
    assert!(sandboxed.data.protocol_error.is_some());
    fx.dispatch();
    assert!(!fx.state.client_infos().iter().any(|i| i.sandboxed));
    // Nobody else is affected.
    fx.roundtrip(&mut creator);
    assert!(creator.data.protocol_error.is_none());
}

#[test]
fn closing_close_fd_stops_the_listener_but_keeps_its_clients() {
    let mut fx = Fixture::new();
    let (mut creator, _) = fx.add_client();
    let mut ctx = create_context(&mut fx, &mut creator, "org.example.App");
    let mut first = connect_sandboxed(&mut fx, &ctx);
    drop(ctx.close.take());
    fx.dispatch();
    fx.dispatch();
    // The compositor closed its listening socket: nobody is accepting any more.
    let err = UnixStream::connect(&ctx.path).expect_err("listener closed");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    fx.roundtrip(&mut first);
    assert!(first.data.protocol_error.is_none());
    assert!(fx.state.client_infos().iter().any(|i| i.sandboxed));
}

#[test]
fn a_bad_listen_fd_is_a_protocol_error_not_a_crash() {
    let mut fx = Fixture::new();
    let (mut bystander, _) = fx.add_client();
    let dir = tempfile::tempdir().unwrap();
    // Not a socket; a socket that is not listening; a datagram socket.
    let file = std::fs::File::create(dir.path().join("f")).unwrap();
    let (idle, _peer) = UnixStream::pair().unwrap();
    let dgram = std::os::unix::net::UnixDatagram::unbound().unwrap();
    let bad: [&dyn std::os::fd::AsFd; 3] = [&file, &idle, &dgram];
    for fd in bad {
        let (mut c, _) = fx.add_client();
        let (_close, close_theirs) = UnixStream::pair().unwrap();
        let manager = c.data.security.clone().unwrap();
        let ctx = manager.create_listener(fd.as_fd(), close_theirs.as_fd(), &c.qh(), ());
        ctx.commit();
        fx.roundtrip(&mut c);
        let err = c.data.protocol_error.clone().expect("a protocol error");
        assert!(err.contains("wp_security_context_manager_v1"), "{err}");
    }
    fx.roundtrip(&mut bystander);
    assert!(bystander.data.protocol_error.is_none());
}

#[test]
fn setting_a_field_twice_or_using_a_committed_context_is_an_error() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let dir = tempfile::tempdir().unwrap();
    let listener = UnixListener::bind(dir.path().join("s")).unwrap();
    let (_close, close_theirs) = UnixStream::pair().unwrap();
    let manager = c.data.security.clone().unwrap();
    let ctx = manager.create_listener(listener.as_fd(), close_theirs.as_fd(), &c.qh(), ());
    ctx.set_app_id("a".into());
    ctx.set_app_id("b".into());
    fx.roundtrip(&mut c);
    assert!(
        c.data
            .protocol_error
            .clone()
            .unwrap()
            .contains("wp_security_context_v1")
    );

    let (mut c, _) = fx.add_client();
    let manager = c.data.security.clone().unwrap();
    let ctx = manager.create_listener(listener.as_fd(), close_theirs.as_fd(), &c.qh(), ());
    ctx.commit();
    ctx.set_app_id("late".into());
    fx.roundtrip(&mut c);
    assert!(
        c.data
            .protocol_error
            .clone()
            .unwrap()
            .contains("wp_security_context_v1")
    );
}

use std::os::fd::AsFd;
