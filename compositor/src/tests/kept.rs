//! Windows' elements kept between frames (`render::kept`): a window that did
//! not change is not built again, and every kind of change still shows,
//! including those that come with no commit of the window.

use super::client::{TestClient, Toplevel};
use super::fixture::Fixture;
use super::scenes::{GREEN, GREY, RED, floating, rgba, window_location};
use crate::backend::Capture;

fn paint(c: &mut TestClient, t: &Toplevel, w: i32, h: i32, argb: u32) {
    let b = c.buffer(w, h, argb);
    t.surface.attach(Some(&b), 0, 0);
    t.surface.damage_buffer(0, 0, w, h);
    t.surface.commit();
}

/// The pixel at window-relative `(x, y)` of the window `app_id`.
fn at(fx: &Fixture, frame: &Capture, app_id: &str, x: i32, y: i32) -> [u8; 4] {
    let (wx, wy) = window_location(fx, app_id);
    frame.pixel((wx + x) as u32, (wy + y) as u32)
}

fn built(fx: &Fixture) -> u64 {
    fx.state.kept.borrow().built()
}

fn kept(fx: &Fixture) -> usize {
    let output = fx.state.outputs()[0].name();
    fx.state.kept.borrow().kept(&output)
}

#[test]
fn a_still_window_is_kept_and_every_change_shows() {
    let mut fx = Fixture::new();
    let (mut still, _) = fx.add_client();
    let s = floating(&mut fx, &mut still, "still", 200, 100);
    paint(&mut still, &s, 200, 100, GREY);
    fx.roundtrip(&mut still);
    let (mut c, _) = fx.add_client();
    let t = floating(&mut fx, &mut c, "changing", 160, 160);
    t.xdg_surface.set_window_geometry(0, 0, 160, 160);
    paint(&mut c, &t, 160, 160, GREEN);
    fx.roundtrip(&mut c);

    let frame = fx.screenshot();
    assert_eq!(at(&fx, &frame, "changing", 60, 60), rgba(GREEN));
    assert_eq!(at(&fx, &frame, "still", 10, 10), rgba(GREY));
    assert_eq!(kept(&fx), 2, "both windows' elements are kept");

    // Nothing changed: nothing is built, and the frame is the same.
    let before = built(&fx);
    let again = fx.screenshot();
    assert_eq!(built(&fx), before, "an unchanged frame rebuilt a window");
    assert_eq!(again.rgba, frame.rgba);

    // A commit rebuilds that window only.
    paint(&mut c, &t, 160, 160, RED);
    fx.roundtrip(&mut c);
    let frame = fx.screenshot();
    assert_eq!(built(&fx), before + 1, "only the changed window is built");
    assert_eq!(at(&fx, &frame, "changing", 60, 60), rgba(RED));
    assert_eq!(at(&fx, &frame, "still", 10, 10), rgba(GREY));

    // A popup opening shows, and closing (no commit of the window) goes.
    let super::client::Popup {
        surface,
        xdg_surface: xdg,
        popup,
    } = c.popup(&t.xdg_surface, (60, 40), (20, 20, 20, 20));
    fx.roundtrip(&mut c);
    let b = c.buffer(60, 40, GREEN);
    surface.attach(Some(&b), 0, 0);
    surface.damage_buffer(0, 0, 60, 40);
    surface.commit();
    fx.roundtrip(&mut c);
    let frame = fx.screenshot();
    assert_eq!(
        at(&fx, &frame, "changing", 60, 50),
        rgba(GREEN),
        "the popup"
    );
    // The role goes first, the surface stays: no wl_surface is destroyed.
    popup.destroy();
    fx.roundtrip(&mut c);
    let frame = fx.screenshot();
    assert_eq!(at(&fx, &frame, "changing", 60, 50), rgba(RED), "popup gone");
    xdg.destroy();
    surface.destroy();
    fx.roundtrip(&mut c);

    // A subsurface shows; its role destroyed (the surface kept, nothing
    // committed) takes it away at once.
    let (_above, sub) = c.subsurface(&t.surface, (100, 100), (40, 40), GREY);
    t.surface.commit();
    fx.roundtrip(&mut c);
    let frame = fx.screenshot();
    assert_eq!(
        at(&fx, &frame, "changing", 120, 120),
        rgba(GREY),
        "subsurface"
    );
    let frame = fx.screenshot();
    assert_eq!(at(&fx, &frame, "changing", 120, 120), rgba(GREY));
    sub.destroy();
    fx.roundtrip(&mut c);
    let frame = fx.screenshot();
    assert_eq!(at(&fx, &frame, "changing", 120, 120), rgba(RED), "unmapped");

    // A move by the shell shows, though the client did nothing.
    let window = fx
        .state
        .space
        .elements()
        .find(|w| crate::shell::app_id_and_title(w).0.as_deref() == Some("changing"))
        .cloned()
        .unwrap();
    let (x, y) = window_location(&fx, "changing");
    fx.state.place_window(&window, (x + 300, y));
    let frame = fx.screenshot();
    assert_eq!(window_location(&fx, "changing"), (x + 300, y));
    assert_eq!(at(&fx, &frame, "changing", 60, 60), rgba(RED));
    assert_ne!(frame.pixel(x as u32 + 60, y as u32 + 60), rgba(RED));

    // A window no longer drawn keeps nothing (nor its client's buffer).
    fx.state.minimize(&window);
    let frame = fx.screenshot();
    assert_eq!(kept(&fx), 1, "a minimized window's elements were kept");
    // The still window was kept through all of it.
    assert_eq!(at(&fx, &frame, "still", 10, 10), rgba(GREY));
}

#[test]
fn a_commit_that_changes_nothing_shown_keeps_the_window() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let t = floating(&mut fx, &mut c, "w", 160, 160);
    t.xdg_surface.set_window_geometry(0, 0, 160, 160);
    paint(&mut c, &t, 160, 160, GREEN);
    fx.roundtrip(&mut c);
    fx.screenshot();
    let before = built(&fx);

    // A frame callback and an empty commit, as an idle animating client makes
    // every frame: drawn by the refresh timer without building the window.
    assert!(fx.next_frame(&mut c, &t.surface));
    assert!(fx.next_frame(&mut c, &t.surface));
    let frame = fx.screenshot();
    assert_eq!(built(&fx), before, "an empty commit rebuilt the window");
    assert_eq!(at(&fx, &frame, "w", 80, 80), rgba(GREEN));

    // A new buffer with no damage: the elements must let the old one go.
    let first = c.data.released.len();
    let b = c.buffer(160, 160, RED);
    t.surface.attach(Some(&b), 0, 0);
    t.surface.commit();
    fx.roundtrip(&mut c);
    fx.screenshot();
    assert_eq!(built(&fx), before + 1, "a new buffer kept the old elements");
    assert!(fx.next_frame(&mut c, &t.surface));
    assert!(
        c.data.released.len() > first,
        "the replaced buffer never went back"
    );

    // Damage on the same buffer shows.
    let b = c.buffer(160, 160, RED);
    t.surface.attach(Some(&b), 0, 0);
    t.surface.damage_buffer(0, 0, 160, 160);
    t.surface.commit();
    fx.roundtrip(&mut c);
    let frame = fx.screenshot();
    assert_eq!(at(&fx, &frame, "w", 80, 80), rgba(RED));
    let before = built(&fx);

    // A viewport set with no new buffer changes the surface's size: it shows.
    let viewporter = c.data.viewporter.clone().unwrap();
    let viewport = viewporter.get_viewport(&t.surface, &c.qh(), ());
    viewport.set_destination(80, 80);
    t.surface.commit();
    fx.roundtrip(&mut c);
    let frame = fx.screenshot();
    assert_eq!(built(&fx), before + 1, "a viewport change kept the window");
    assert_eq!(at(&fx, &frame, "w", 40, 40), rgba(RED));
    assert_ne!(at(&fx, &frame, "w", 120, 120), rgba(RED), "not scaled down");
}

/// The window `app_id` in the space.
fn window(fx: &Fixture, app_id: &str) -> smithay::desktop::Window {
    fx.state
        .space
        .elements()
        .find(|w| crate::shell::app_id_and_title(w).0.as_deref() == Some(app_id))
        .cloned()
        .unwrap()
}

#[test]
fn a_restack_keeps_every_window_and_a_change_rebuilds_only_its_own() {
    let mut fx = Fixture::new();
    let mut clients = Vec::new();
    for (name, colour) in [("a", GREY), ("b", GREEN), ("c", RED)] {
        let (mut c, _) = fx.add_client();
        let t = floating(&mut fx, &mut c, name, 120, 120);
        paint(&mut c, &t, 120, 120, colour);
        fx.roundtrip(&mut c);
        clients.push((c, t));
    }
    fx.screenshot();
    assert_eq!(kept(&fx), 3);
    let before = built(&fx);

    // Kept windows are looked for in last frame's order: the bottom one
    // raised to the top is still found, and nothing is built.
    fx.state.focus_window(Some(window(&fx, "a")));
    let frame = fx.screenshot();
    assert_eq!(built(&fx), before, "a restack rebuilt a window");
    assert_eq!(kept(&fx), 3);
    assert_eq!(at(&fx, &frame, "a", 60, 60), rgba(GREY), "a on top");

    // One window changes while another is raised: that one alone is built,
    // and each shows what it is now.
    let (c, t) = &mut clients[1];
    paint(c, t, 120, 120, RED);
    fx.roundtrip(&mut clients[1].0);
    fx.state.focus_window(Some(window(&fx, "b")));
    let frame = fx.screenshot();
    assert_eq!(
        built(&fx),
        before + 1,
        "not only the changed window was built"
    );
    assert_eq!(kept(&fx), 3);
    assert_eq!(at(&fx, &frame, "b", 60, 60), rgba(RED), "b changed, on top");
    fx.state.focus_window(Some(window(&fx, "c")));
    let frame = fx.screenshot();
    assert_eq!(built(&fx), before + 1);
    assert_eq!(at(&fx, &frame, "c", 60, 60), rgba(RED));
    fx.state.focus_window(Some(window(&fx, "a")));
    let frame = fx.screenshot();
    assert_eq!(built(&fx), before + 1);
    assert_eq!(at(&fx, &frame, "a", 60, 60), rgba(GREY));
}
