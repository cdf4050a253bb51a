//! A headless output with nothing new to show draws nothing at its vblanks, as
//! an idle kms output would not: a commit that changes nothing on screen gets
//! its frame callback at the next vblank without a frame, and anything that
//! changes what the output shows draws again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wayland_client::protocol::wl_surface::WlSurface;

use super::client::{TestClient, Toplevel};
use super::fixture::Fixture;
use super::scenes::{GREEN, GREY, floating, rgba, window_location};

/// Turns the loop as the session does, `wake_outputs` after every turn, for
/// `ms` milliseconds: several vblanks of the 60 Hz output.
fn run_for(fx: &mut Fixture, c: &mut TestClient, ms: u64) {
    let deadline = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < deadline {
        c.pump();
        fx.dispatch();
        fx.state.wake_outputs();
        c.pump();
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Asks for a frame callback with an empty commit; whether it came.
fn callback(fx: &mut Fixture, c: &mut TestClient, surface: &WlSurface) -> bool {
    let done = Arc::new(AtomicBool::new(false));
    surface.frame(&c.qh(), done.clone());
    surface.commit();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        run_for(fx, c, 4);
        if done.load(Ordering::SeqCst) {
            return true;
        }
    }
    false
}

fn drawn(fx: &Fixture) -> u64 {
    fx.state.frames_rendered
}

/// New contents for the 200x150 window `t`, all of it damaged, committed.
fn paint(c: &mut TestClient, t: &Toplevel, argb: u32) {
    let b = c.buffer(200, 150, argb);
    t.surface.attach(Some(&b), 0, 0);
    t.surface.damage_buffer(0, 0, 200, 150);
    t.surface.commit();
}

/// A fixture with one client and its floating 200x150 window `w`, painted grey.
fn grey_window() -> (Fixture, TestClient, Toplevel) {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let t = floating(&mut fx, &mut c, "w", 200, 150);
    paint(&mut c, &t, GREY);
    (fx, c, t)
}

#[test]
fn an_idle_output_draws_nothing_and_every_change_draws_again() {
    let (mut fx, mut c, t) = grey_window();
    run_for(&mut fx, &mut c, 100);
    let settled = drawn(&fx);
    assert!(settled > 0, "the window was never drawn");
    run_for(&mut fx, &mut c, 150);
    assert_eq!(drawn(&fx), settled, "an idle output drew");

    // Empty commits asking for frame callbacks: answered, with no frame.
    assert!(callback(&mut fx, &mut c, &t.surface), "no callback");
    assert!(callback(&mut fx, &mut c, &t.surface), "no second callback");
    assert_eq!(drawn(&fx), settled, "an empty commit drew a frame");

    // New contents draw, and the output settles again after them.
    paint(&mut c, &t, GREEN);
    run_for(&mut fx, &mut c, 100);
    let changed = drawn(&fx);
    assert!(changed > settled, "new contents were not drawn");
    run_for(&mut fx, &mut c, 150);
    assert_eq!(drawn(&fx), changed, "the output did not settle again");
    let frame = fx.screenshot();
    let (x, y) = window_location(&fx, "w");
    assert_eq!(frame.pixel(x as u32 + 100, y as u32 + 75), rgba(GREEN));
    let changed = drawn(&fx);

    // The shell moving the window draws, though the client did nothing.
    let window = fx.state.space.elements().next().cloned().unwrap();
    fx.state.place_window(&window, (x + 40, y));
    run_for(&mut fx, &mut c, 100);
    let moved = drawn(&fx);
    assert!(moved > changed, "a move was not drawn");

    // Maximized by the shell, the client acks and commits its old buffer:
    // nothing of its surface changed, but the window is tiled now (its focus
    // border goes), so that commit draws.
    fx.state.set_maximized(&window, true);
    run_for(&mut fx, &mut c, 100);
    let maximized = drawn(&fx);
    t.surface.commit();
    run_for(&mut fx, &mut c, 100);
    assert!(
        drawn(&fx) > maximized,
        "a commit that tiled the window drew nothing"
    );
}

#[test]
fn an_animated_theme_cursor_keeps_the_output_drawing() {
    use crate::cursor::Cursor;
    use crate::cursor::theme::{self, CursorImage};
    let frame = |bgra: [u8; 4]| CursorImage {
        nominal: 24,
        width: 8,
        height: 8,
        hotspot: (0, 0),
        delay_ms: 40,
        pixels: bgra.repeat(64),
    };
    let dir = tempfile::tempdir().unwrap();
    let cursors = dir.path().join("anim/cursors");
    std::fs::create_dir_all(&cursors).unwrap();
    let two = theme::xcursor_file(&[frame([0, 0, 255, 255]), frame([255, 0, 0, 255])]);
    std::fs::write(cursors.join("default"), two).unwrap();

    let mut fx = Fixture::new();
    let mut config = fx.state.config.cursor.clone();
    config.theme = "anim".into();
    fx.state.cursor = Cursor::new(&config, vec![dir.path().to_path_buf()]);
    let (mut c, _) = fx.add_client();
    fx.state.pointer_move((100.0, 100.0).into());
    run_for(&mut fx, &mut c, 100);
    assert!(fx.state.cursor.animates(&fx.state.cursor_status));
    let before = drawn(&fx);
    run_for(&mut fx, &mut c, 200);
    assert!(
        drawn(&fx) >= before + 4,
        "an animated cursor stood still: {} frames drawn in 200 ms",
        drawn(&fx) - before
    );
}

#[test]
fn a_request_that_changes_the_screen_without_a_commit_draws() {
    let (mut fx, mut c, t) = grey_window();
    let (_above, sub) = c.subsurface(&t.surface, (20, 20), (40, 40), GREEN);
    t.surface.commit();
    run_for(&mut fx, &mut c, 100);
    let frame = fx.screenshot();
    let (x, y) = window_location(&fx, "w");
    assert_eq!(frame.pixel(x as u32 + 30, y as u32 + 30), rgba(GREEN));
    run_for(&mut fx, &mut c, 100);
    let settled = drawn(&fx);
    run_for(&mut fx, &mut c, 100);
    assert_eq!(drawn(&fx), settled, "an idle output drew");

    // wl_subsurface.destroy unmaps the subsurface at once: no commit, and
    // nothing in the compositor hears of it but the request itself.
    sub.destroy();
    run_for(&mut fx, &mut c, 100);
    assert!(
        drawn(&fx) > settled,
        "the unmapped subsurface was never drawn away"
    );
    let frame = fx.screenshot();
    assert_eq!(frame.pixel(x as u32 + 30, y as u32 + 30), rgba(GREY));
}
