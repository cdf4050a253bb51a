//! Window policy through real protocol traffic.

use smithay::reexports::wayland_protocols::xdg::shell::server::xdg_toplevel::State;
use wayland_protocols_wlr::layer_shell::v1::client::{zwlr_layer_shell_v1, zwlr_layer_surface_v1};

use super::fixture::{Fixture, pixel};

const MAXIMIZED: u32 = State::Maximized as u32;
const ACTIVATED: u32 = State::Activated as u32;

#[test]
fn a_new_toplevel_is_configured_maximized_then_activated() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let t = fx.configured_toplevel(&mut c, "app.one");
    // The first configure already carries the maximized size: no resize flash.
    let first = c.configures_of(&t.surface);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!((first[0].0, first[0].1), (1280, 720));
    assert!(first[0].2.contains(&MAXIMIZED));
    c.attach_configured(&t.surface, (0, 0), 0xff00_80ff);
    fx.roundtrip(&mut c);
    let all = c.configures_of(&t.surface);
    let last = all.last().unwrap();
    assert!(
        last.2.contains(&ACTIVATED) && last.2.contains(&MAXIMIZED),
        "{all:?}"
    );
    assert_eq!(fx.focused_app().as_deref(), Some("app.one"));
    // The window covers the output with its colour.
    let shot = fx.screenshot();
    assert_eq!(pixel(&shot, 640, 360), [0x00, 0x80, 0xff, 0xff]);
}

#[test]
fn a_dialog_floats_centred_over_its_parent() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let parent = fx.map_toplevel(&mut c, "app.main", (0, 0), 0xff20_2020);

    let dialog = c.create_toplevel("app.dialog");
    dialog.toplevel.set_parent(Some(&parent.toplevel));
    dialog.surface.commit();
    fx.roundtrip(&mut c);
    let first = c.configures_of(&dialog.surface);
    // Size left to the client, not maximized.
    assert_eq!((first[0].0, first[0].1), (0, 0));
    assert!(!first[0].2.contains(&MAXIMIZED));
    c.attach_configured(&dialog.surface, (300, 200), 0xffff_0000);
    fx.roundtrip(&mut c);
    let w = fx
        .state
        .space
        .elements()
        .find(|w| {
            w.toplevel().is_some_and(|t| {
                smithay::reexports::wayland_server::Resource::id(t.wl_surface()).protocol_id()
                    == dialog.surface.id().protocol_id()
            })
        })
        .cloned()
        .expect("dialog mapped");
    let geo = fx.state.space.element_geometry(&w).unwrap();
    assert_eq!(
        (geo.loc.x, geo.loc.y, geo.size.w, geo.size.h),
        (490, 260, 300, 200)
    );
    assert_eq!(fx.focused_app().as_deref(), Some("app.dialog"));
    let shot = fx.screenshot();
    assert_eq!(pixel(&shot, 640, 360), [0xff, 0, 0, 0xff], "dialog on top");
    // The parent shows around it, darkened by the default dialog_dim of 0.4.
    let dimmed = (f32::from(0x20u8) * 0.6).round() as u8;
    assert_eq!(
        pixel(&shot, 100, 100),
        [dimmed, dimmed, dimmed, 0xff],
        "parent around it, dimmed"
    );
    // Set free, the dialog no longer dims its parent; given the parent back
    // while mapped, it dims it again.
    dialog.toplevel.set_parent(None);
    fx.roundtrip(&mut c);
    let shot = fx.screenshot();
    assert_eq!(
        pixel(&shot, 100, 100),
        [0x20, 0x20, 0x20, 0xff],
        "no parent"
    );
    dialog.toplevel.set_parent(Some(&parent.toplevel));
    fx.roundtrip(&mut c);
    let shot = fx.screenshot();
    assert_eq!(
        pixel(&shot, 100, 100),
        [dimmed, dimmed, dimmed, 0xff],
        "again"
    );
    // Closed, it dims nothing.
    dialog.toplevel.destroy();
    fx.roundtrip(&mut c);
    assert!(fx.state.shell.parented.is_empty());
    let shot = fx.screenshot();
    assert_eq!(pixel(&shot, 100, 100), [0x20, 0x20, 0x20, 0xff], "closed");
}

use wayland_client::Proxy;

#[test]
fn closing_a_window_hands_focus_back_and_cycling_visits_all() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let mut windows = Vec::new();
    for app in ["a", "b", "c"] {
        let t = fx.map_toplevel(&mut c, app, (0, 0), 0xff00_0000);
        windows.push(t);
    }
    assert_eq!(fx.focused_app().as_deref(), Some("c"));
    fx.state.press_combo("Alt+Tab").unwrap();
    assert_eq!(fx.focused_app().as_deref(), Some("b"));
    fx.state.press_combo("Alt+Tab").unwrap();
    assert_eq!(fx.focused_app().as_deref(), Some("a"));
    fx.state.press_combo("Alt+Shift+Tab").unwrap();
    assert_eq!(fx.focused_app().as_deref(), Some("b"));
    // Closing the focused window focuses the one used before it.
    let b = windows.remove(1);
    b.toplevel.destroy();
    b.xdg_surface.destroy();
    b.surface.destroy();
    fx.roundtrip(&mut c);
    assert_eq!(fx.focused_app().as_deref(), Some("a"));
    // The client saw the keyboard move to a's surface last.
    fx.roundtrip(&mut c);
    assert_eq!(
        c.data.keyboard_enters.last(),
        Some(&windows[0].surface.id().protocol_id())
    );
}

#[test]
fn fullscreen_covers_the_output_and_restores() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let t = fx.map_toplevel(&mut c, "video", (0, 0), 0xff00_ff00);
    t.toplevel.set_fullscreen(None);
    fx.roundtrip(&mut c);
    let last = c.configures_of(&t.surface).last().cloned().unwrap();
    assert_eq!((last.0, last.1), (1280, 720));
    assert!(last.2.contains(&(State::Fullscreen as u32)));
    t.toplevel.unset_fullscreen();
    fx.roundtrip(&mut c);
    let last = c.configures_of(&t.surface).last().cloned().unwrap();
    assert!(!last.2.contains(&(State::Fullscreen as u32)), "{last:?}");
}

#[test]
fn a_panel_exclusive_zone_shrinks_maximized_windows() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let t = fx.map_toplevel(&mut c, "app", (0, 0), 0xff00_00ff);

    let qh = c.qh();
    let panel_surface = c.data.compositor.as_ref().unwrap().create_surface(&qh, ());
    let layer = c.data.layer_shell.as_ref().unwrap().get_layer_surface(
        &panel_surface,
        None,
        zwlr_layer_shell_v1::Layer::Top,
        "panel".into(),
        &qh,
        (),
    );
    layer.set_size(0, 40);
    layer.set_anchor(
        zwlr_layer_surface_v1::Anchor::Top
            | zwlr_layer_surface_v1::Anchor::Left
            | zwlr_layer_surface_v1::Anchor::Right,
    );
    layer.set_exclusive_zone(40);
    panel_surface.commit();
    fx.roundtrip(&mut c);
    assert_eq!(c.data.layer_configures.last(), Some(&(1280, 40)));
    let buffer = c.buffer(1280, 40, 0xffff_ffff);
    panel_surface.attach(Some(&buffer), 0, 0);
    panel_surface.commit();
    fx.roundtrip(&mut c);
    fx.roundtrip(&mut c);
    // The maximized window is told to shrink below the panel.
    let last = c.configures_of(&t.surface).last().cloned().unwrap();
    assert_eq!(
        (last.0, last.1),
        (1280, 680),
        "{:?}",
        c.configures_of(&t.surface)
    );
    c.attach_configured(&t.surface, (0, 0), 0xff00_00ff);
    fx.roundtrip(&mut c);
    let shot = fx.screenshot();
    assert_eq!(
        pixel(&shot, 640, 20),
        [0xff, 0xff, 0xff, 0xff],
        "panel on top"
    );
    assert_eq!(
        pixel(&shot, 640, 400),
        [0x00, 0x00, 0xff, 0xff],
        "window below it"
    );
    let usable = crate::shell::usable_area(&fx.state.space, &fx.state.outputs()[0]);
    assert_eq!((usable.loc.y, usable.size.h), (40, 680));
}

#[test]
fn clipboard_moves_between_two_clients() {
    let mut fx = Fixture::new();
    let (mut a, _) = fx.add_client();
    let (mut b, _) = fx.add_client();
    let qh_a = a.qh();
    let qh_b = b.qh();
    let dev_a = a.data.data_manager.as_ref().unwrap().get_data_device(
        a.data.seat.as_ref().unwrap(),
        &qh_a,
        (),
    );
    let _dev_b = b.data.data_manager.as_ref().unwrap().get_data_device(
        b.data.seat.as_ref().unwrap(),
        &qh_b,
        (),
    );
    let _ta = fx.map_toplevel(&mut a, "copy.from", (0, 0), 0xff00_0000);
    fx.roundtrip(&mut a);
    let serial = a.data.last_serial;
    let source = a
        .data
        .data_manager
        .as_ref()
        .unwrap()
        .create_data_source(&qh_a, b"tessera clipboard".to_vec());
    source.offer("text/plain;charset=utf-8".into());
    dev_a.set_selection(Some(&source), serial);
    fx.roundtrip(&mut a);
    // b gets the focus, then sees the offer.
    let _tb = fx.map_toplevel(&mut b, "paste.into", (0, 0), 0xff00_0000);
    fx.roundtrip(&mut b);
    let offer = b.data.selection.clone().expect("b sees the selection");
    assert!(
        b.data
            .offer_mimes
            .contains(&"text/plain;charset=utf-8".to_owned())
    );
    let (read, write) = std::io::pipe().unwrap();
    offer.receive(
        "text/plain;charset=utf-8".into(),
        std::os::fd::AsFd::as_fd(&write),
    );
    drop(write);
    fx.roundtrip(&mut b);
    fx.roundtrip(&mut a);
    assert_eq!(a.data.source_sends, ["text/plain;charset=utf-8"]);
    let mut got = String::new();
    std::io::Read::read_to_string(&mut &read, &mut got).unwrap();
    assert_eq!(got, "tessera clipboard");
}

/// A pointer that does not move still follows the layout: a window that opens
/// under it takes the pointer focus by the next frame, and closing it hands the focus
/// back (sway's cursor rebase), with no motion from the user.
#[test]
fn the_pointer_focus_follows_the_layout_without_motion() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let a = fx.map_toplevel(&mut c, "a", (0, 0), 0xff00_0000);
    assert!(fx.next_frame(&mut c, &a.surface));
    fx.state.pointer_move((300.0, 200.0).into());
    let focus = |fx: &Fixture| {
        fx.state
            .seat
            .get_pointer()
            .unwrap()
            .current_focus()
            .map(|s| smithay::reexports::wayland_server::Resource::id(&s).protocol_id())
    };
    assert_eq!(focus(&fx), Some(a.surface.id().protocol_id()));

    let b = fx.map_toplevel(&mut c, "b", (0, 0), 0xff00_ff00);
    assert!(fx.next_frame(&mut c, &b.surface));
    assert_eq!(focus(&fx), Some(b.surface.id().protocol_id()));

    b.toplevel.destroy();
    b.xdg_surface.destroy();
    b.surface.destroy();
    fx.roundtrip(&mut c);
    assert!(fx.next_frame(&mut c, &a.surface));
    assert_eq!(focus(&fx), Some(a.surface.id().protocol_id()));

    // An input region that no longer covers the pointer moves nothing, yet the
    // pointer leaves.
    let region = c
        .data
        .compositor
        .as_ref()
        .unwrap()
        .create_region(&c.qh(), ());
    region.add(0, 0, 10, 10);
    a.surface.set_input_region(Some(&region));
    a.surface.commit();
    fx.roundtrip(&mut c);
    assert!(fx.next_frame(&mut c, &a.surface));
    assert_eq!(focus(&fx), None);

    a.surface.set_input_region(None);
    a.surface.commit();
    fx.roundtrip(&mut c);
    assert!(fx.next_frame(&mut c, &a.surface));
    assert_eq!(focus(&fx), Some(a.surface.id().protocol_id()));
}

/// `msg windows` tells a client that stopped drawing from a compositor that owes
/// it an event: its commits, the frame callbacks not yet answered, the
/// configures not yet acknowledged, and where the keyboard focus is.
#[test]
fn msg_windows_reports_the_surface_state_the_compositor_holds() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use crate::ipc::proto::{Request, SurfaceInfo};

    fn surface(fx: &mut Fixture) -> SurfaceInfo {
        let answer = crate::ipc::server::handle(&mut fx.state, Request::Windows);
        assert!(answer.ok, "{answer:?}");
        let windows: Vec<crate::ipc::proto::WindowInfo> =
            serde_json::from_value(answer.data).unwrap();
        assert_eq!(windows.len(), 1, "{windows:?}");
        windows[0].surface.clone().expect("surface state")
    }

    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let t = fx.map_toplevel(&mut c, "app.one", (0, 0), 0xff00_80ff);
    // Mapping activated it: that configure is out and not yet acknowledged.
    assert_eq!(surface(&mut fx).unacked_configures, 1);
    fx.roundtrip(&mut c);
    let mapped = surface(&mut fx);
    // The role's empty first commit, then the one with the buffer.
    assert_eq!(
        (mapped.commits, mapped.buffer_commits),
        (2, 1),
        "{mapped:?}"
    );
    assert_eq!(mapped.buffer, Some([1280, 720]));
    assert!(mapped.keyboard_focus, "{mapped:?}");
    assert_eq!(mapped.unacked_configures, 0, "{mapped:?}");

    // A frame callback committed and not answered yet: only the client's
    // requests are dispatched, no refresh runs in between.
    let answered = Arc::new(AtomicBool::new(false));
    t.surface.frame(&c.qh(), answered.clone());
    t.surface.commit();
    c.pump();
    fx.display.dispatch_clients(&mut fx.state).unwrap();
    let waiting = surface(&mut fx);
    assert_eq!(
        (waiting.commits, waiting.buffer_commits),
        (3, 1),
        "{waiting:?}"
    );
    assert_eq!(waiting.frame_callbacks_waiting, 1, "{waiting:?}");
    assert!(waiting.last_commit_ms.is_some_and(|ms| ms < 60_000));

    // The next refresh answers it, and the count says so.
    assert!(fx.next_frame(&mut c, &t.surface));
    assert!(answered.load(std::sync::atomic::Ordering::SeqCst));
    let after = surface(&mut fx);
    assert_eq!(after.frame_callbacks_waiting, 0, "{after:?}");
    assert_eq!(after.commits, 4, "{after:?}");
}
