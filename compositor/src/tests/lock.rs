//! ext-session-lock: nothing but lock surfaces while locked, even after the
//! locker dies.

use super::fixture::{Fixture, pixel};

#[test]
fn locked_shows_only_the_lock_surface_and_survives_a_locker_crash() {
    let mut fx = Fixture::new();
    let (mut app, _) = fx.add_client();
    let _secret = fx.map_toplevel(&mut app, "secret.document", (0, 0), 0xffff_0000);
    assert_eq!(pixel(&fx.screenshot(), 640, 360), [0xff, 0, 0, 0xff]);

    let (mut locker, locker_handle) = fx.add_client();
    let held = locker.lock();
    let surface = held.surface.clone();
    fx.roundtrip(&mut locker);
    assert_eq!(locker.data.lock_configures.last(), Some(&(1280, 720)));
    let buffer = locker.buffer(1280, 720, 0xff00_ff00);
    surface.attach(Some(&buffer), 0, 0);
    surface.damage_buffer(0, 0, 1280, 720);
    surface.commit();
    fx.roundtrip(&mut locker);
    // The `locked` event comes after a frame without the session was rendered.
    let output_handle = fx.state.outputs()[0].clone();
    fx.state
        .render_headless(&output_handle, false, true)
        .unwrap();
    for _ in 0..40 {
        fx.roundtrip(&mut locker);
        if locker.data.locked {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(locker.data.locked, "locker never got `locked`");
    let shot = fx.screenshot();
    assert_eq!(
        pixel(&shot, 640, 360),
        [0, 0xff, 0, 0xff],
        "only the lock surface"
    );
    assert_eq!(pixel(&shot, 10, 10), [0, 0xff, 0, 0xff]);

    // Keys go to the lock surface, not the app, and bindings are off.
    fx.state.press_combo("Super+Shift+e").unwrap();
    assert!(fx.state.running, "quit binding must not work while locked");

    // The locker crashes: the session stays locked, showing no client content.
    drop(locker);
    drop(locker_handle);
    fx.dispatch();
    fx.dispatch();
    fx.state.space.refresh();
    assert!(fx.state.lock.is_locked());
    let shot = fx.screenshot();
    let bg = crate::render::clear_colour(&fx.state);
    let expect = [
        (bg.r() * 255.0).round() as u8,
        (bg.g() * 255.0).round() as u8,
        (bg.b() * 255.0).round() as u8,
        0xff,
    ];
    assert_eq!(
        pixel(&shot, 640, 360),
        expect,
        "a dead locker leaves a blank locked screen"
    );
    assert_ne!(pixel(&shot, 640, 360), [0xff, 0, 0, 0xff]);

    // A new locker can take over and unlock.
    let (mut locker2, _) = fx.add_client();
    let held2 = locker2.lock();
    fx.roundtrip(&mut locker2);
    fx.state
        .render_headless(&output_handle, false, true)
        .unwrap();
    fx.dispatch();
    assert!(
        !locker2.data.lock_finished,
        "a new locker may replace a dead one"
    );
    held2.lock.unlock_and_destroy();
    fx.roundtrip(&mut locker2);
    assert!(!fx.state.lock.is_locked());
    assert_eq!(pixel(&fx.screenshot(), 640, 360), [0xff, 0, 0, 0xff]);
}
