//! Clients that misbehave get protocol errors or are cleaned up; the compositor
//! keeps going and the others are unaffected.

use super::fixture::{Fixture, pixel};

#[test]
fn an_invalid_request_is_a_protocol_error_for_that_client_only() {
    let mut fx = Fixture::new();
    let (mut good, _) = fx.add_client();
    let _good = fx.map_toplevel(&mut good, "good", (0, 0), 0xff00_00ff);

    let (mut bad, _) = fx.add_client();
    // A buffer whose stride is shorter than a row is invalid (wl_shm.invalid_stride).
    let qh = bad.qh();
    let file = tempfile::tempfile().unwrap();
    file.set_len(4096).unwrap();
    let pool =
        bad.data
            .shm
            .as_ref()
            .unwrap()
            .create_pool(std::os::fd::AsFd::as_fd(&file), 4096, &qh, ());
    let _buffer = pool.create_buffer(
        0,
        32,
        32,
        4,
        wayland_client::protocol::wl_shm::Format::Argb8888,
        &qh,
        (),
    );
    fx.roundtrip(&mut bad);
    let err = bad.data.protocol_error.clone().expect("a protocol error");
    assert!(err.contains("wl_shm"), "{err}");
    // The good client still renders and answers.
    fx.roundtrip(&mut good);
    assert_eq!(pixel(&fx.screenshot(), 640, 360), [0, 0, 0xff, 0xff]);
    assert!(good.data.protocol_error.is_none());
}

#[test]
fn a_client_that_disconnects_mid_commit_is_cleaned_up() {
    let mut fx = Fixture::new();
    let (mut c, handle) = fx.add_client();
    let t = fx.configured_toplevel(&mut c, "leaver");
    let buffer = c.buffer(1280, 720, 0xffff_0000);
    t.surface.attach(Some(&buffer), 0, 0);
    // The commit is sent but the client vanishes before the compositor reads it.
    t.surface.commit();
    let _ = c.conn.flush();
    drop(c);
    fx.dispatch();
    drop(handle);
    fx.dispatch();
    fx.state.space.refresh();
    assert_eq!(fx.state.space.elements().count(), 0);
    assert!(fx.state.shell.focus.is_empty());
    let _ = fx.screenshot();
}

#[test]
fn two_hundred_clients_connect_map_and_disconnect() {
    let mut fx = Fixture::new();
    for i in 0..200 {
        let (mut c, _) = fx.add_client();
        let _t = fx.map_toplevel(&mut c, &format!("churn.{i}"), (0, 0), 0xff10_1010);
        drop(c);
        fx.dispatch();
    }
    fx.dispatch();
    fx.state.space.refresh();
    assert_eq!(fx.state.space.elements().count(), 0, "every window is gone");
    assert!(fx.state.shell.focus.is_empty());
    assert!(fx.state.shell.unmapped.is_empty());
    // Still rendering.
    let shot = fx.screenshot();
    assert_eq!(shot.width, 1280);
}

#[test]
fn a_commit_flood_is_absorbed() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let t = fx.map_toplevel(&mut c, "flood", (0, 0), 0xff00_ff00);
    for _ in 0..5000 {
        t.surface.damage_buffer(0, 0, 10, 10);
        t.surface.commit();
    }
    fx.roundtrip(&mut c);
    assert!(c.data.protocol_error.is_none());
    assert_eq!(pixel(&fx.screenshot(), 640, 360), [0, 0xff, 0, 0xff]);
}

#[test]
fn an_xdg_surface_for_a_surface_with_a_role_or_a_buffer_is_a_protocol_error() {
    use wayland_protocols::xdg::shell::client::xdg_wm_base;
    let mut fx = Fixture::new();

    // A subsurface already has a role.
    let (mut c, _) = fx.add_client();
    let qh = c.qh();
    let compositor = c.data.compositor.clone().unwrap();
    let parent = compositor.create_surface(&qh, ());
    let child = compositor.create_surface(&qh, ());
    let sub = c.data.subcompositor.clone().unwrap();
    let _subsurface = sub.get_subsurface(&child, &parent, &qh, ());
    let _xdg = c
        .data
        .wm_base
        .clone()
        .unwrap()
        .get_xdg_surface(&child, &qh, ());
    fx.roundtrip(&mut c);
    let (interface, code) = c.data.protocol_error_code.clone().expect("a role error");
    assert_eq!(interface, "xdg_wm_base");
    assert_eq!(code, xdg_wm_base::Error::Role as u32);

    // A buffer attached before the xdg_surface exists.
    let (mut c, _) = fx.add_client();
    let qh = c.qh();
    let surface = c.data.compositor.clone().unwrap().create_surface(&qh, ());
    let buffer = c.buffer(16, 16, 0xff00_ff00);
    surface.attach(Some(&buffer), 0, 0);
    let _xdg = c
        .data
        .wm_base
        .clone()
        .unwrap()
        .get_xdg_surface(&surface, &qh, ());
    fx.roundtrip(&mut c);
    let (interface, code) = c.data.protocol_error_code.clone().expect("a state error");
    assert_eq!(interface, "xdg_wm_base");
    assert_eq!(code, xdg_wm_base::Error::InvalidSurfaceState as u32);

    // A well-behaved client is unaffected.
    let (mut good, _) = fx.add_client();
    let _t = fx.map_toplevel(&mut good, "good", (0, 0), 0xff00_00ff);
    assert!(good.data.protocol_error.is_none());
}
