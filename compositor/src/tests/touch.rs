//! Touch screens: a finger goes to the surface it came down on, focuses its
//! window, and is taken away when the session locks.

use super::client::{TestClient, TouchSeen};
use super::fixture::Fixture;
use super::scenes::{floating, window_location};
use wayland_client::Proxy;

fn touches(fx: &mut Fixture, c: &mut TestClient) -> Vec<TouchSeen> {
    fx.roundtrip(c);
    std::mem::take(&mut c.data.touches)
}

#[test]
fn a_finger_stays_with_the_surface_it_came_down_on_and_focuses_its_window() {
    let mut fx = Fixture::new();
    let (mut a, _) = fx.add_client();
    let left = floating(&mut fx, &mut a, "left", 200, 100);
    a.attach_configured(&left.surface, (200, 100), 0xff00_00ff);
    fx.roundtrip(&mut a);
    let (mut b, _) = fx.add_client();
    let right = floating(&mut fx, &mut b, "right", 200, 100);
    b.attach_configured(&right.surface, (200, 100), 0xff00_ff00);
    fx.roundtrip(&mut b);
    fx.roundtrip(&mut a);
    assert!(a.data.touch.is_some(), "the seat has touch");
    assert_eq!(fx.focused_app().as_deref(), Some("right"));
    let (lx, ly) = window_location(&fx, "left");
    let (rx, ry) = window_location(&fx, "right");
    // The cascade puts `right` over part of `left`: touch `left` where it shows.
    let left_only = (f64::from(lx) + 5.0, f64::from(ly) + 5.0);
    assert!(
        left_only.0 < f64::from(rx) || left_only.1 < f64::from(ry),
        "left ({lx},{ly}) must show outside right ({rx},{ry})"
    );

    fx.state.touch_down(Some(3), left_only.into(), 10);
    fx.state.touch_frame();
    assert_eq!(fx.focused_app().as_deref(), Some("left"), "a touch focuses");
    let seen = touches(&mut fx, &mut a);
    assert_eq!(
        seen,
        [
            TouchSeen::Down {
                surface: left.surface.id().protocol_id(),
                id: 3,
                x: 5.0,
                y: 5.0
            },
            TouchSeen::Frame
        ]
    );

    // Sliding over the other window: still the first one's, in its coordinates.
    // (Raised by the touch, `left` now covers part of `right`: this corner of
    // `right` stays clear of it.)
    let over_right = (f64::from(rx) + 190.0, f64::from(ry) + 90.0);
    assert!(over_right.0 >= f64::from(lx + 200) || over_right.1 >= f64::from(ly + 100));
    fx.state.touch_motion(Some(3), over_right.into(), 20);
    fx.state.touch_frame();
    fx.state.touch_up(Some(3), 30);
    fx.state.touch_frame();
    let seen = touches(&mut fx, &mut a);
    assert_eq!(
        seen,
        [
            TouchSeen::Motion {
                id: 3,
                x: over_right.0 - f64::from(lx),
                y: over_right.1 - f64::from(ly)
            },
            TouchSeen::Frame,
            TouchSeen::Up { id: 3 },
            TouchSeen::Frame
        ]
    );
    assert!(touches(&mut fx, &mut b).is_empty(), "{:?}", b.data.touches);

    // A tap on the other window goes there, and focuses it back.
    fx.state.touch_tap(over_right.into());
    let seen = touches(&mut fx, &mut b);
    assert!(
        matches!(seen.first(), Some(TouchSeen::Down { surface, .. }) if *surface == right.surface.id().protocol_id()),
        "{seen:?}"
    );
    assert_eq!(fx.focused_app().as_deref(), Some("right"));
    assert!(a.data.protocol_error.is_none() && b.data.protocol_error.is_none());
}

#[test]
fn locking_takes_every_finger_away_and_touch_then_reaches_only_the_lock_surface() {
    let mut fx = Fixture::new();
    let (mut app, _) = fx.add_client();
    let _secret = fx.map_toplevel(&mut app, "secret", (0, 0), 0xffff_0000);
    fx.state.touch_down(Some(0), (640.0, 360.0).into(), 1);
    fx.state.touch_frame();
    let seen = touches(&mut fx, &mut app);
    assert!(
        matches!(seen.first(), Some(TouchSeen::Down { .. })),
        "{seen:?}"
    );

    let (mut locker, _) = fx.add_client();
    let held = locker.lock();
    fx.roundtrip(&mut locker);
    // (The finger is restated where it rests before the cancel: see `touch_cancel`.)
    let seen = touches(&mut fx, &mut app);
    assert_eq!(seen.last(), Some(&TouchSeen::Cancel), "{seen:?}");

    // The finger still down moves and lifts: the app hears nothing more.
    fx.state.touch_motion(Some(0), (100.0, 100.0).into(), 2);
    fx.state.touch_up(Some(0), 3);
    fx.state.touch_frame();
    assert!(touches(&mut fx, &mut app).is_empty());

    let surface = held.surface.clone();
    let buffer = locker.buffer(1280, 720, 0xff00_ff00);
    surface.attach(Some(&buffer), 0, 0);
    surface.damage_buffer(0, 0, 1280, 720);
    surface.commit();
    fx.roundtrip(&mut locker);
    fx.state.touch_tap((640.0, 360.0).into());
    let seen = touches(&mut fx, &mut locker);
    assert!(
        matches!(seen.first(), Some(TouchSeen::Down { surface: s, .. }) if *s == surface.id().protocol_id()),
        "{seen:?}"
    );
    assert!(
        touches(&mut fx, &mut app).is_empty(),
        "the app stays untouched"
    );

    // Unlocked, a touch reaches the app again.
    held.lock_surface.destroy();
    held.lock.unlock_and_destroy();
    fx.roundtrip(&mut locker);
    assert!(!fx.state.lock.is_locked());
    fx.state.touch_tap((640.0, 360.0).into());
    let seen = touches(&mut fx, &mut app);
    assert!(
        matches!(seen.first(), Some(TouchSeen::Down { .. })),
        "{seen:?}"
    );
}

/// `msg inputs` shows where the pointer is, the buttons held and every finger
/// down, by slot, as the IPC's own touches put them; headless has no devices
/// of its own.
#[test]
fn msg_inputs_shows_the_pointer_its_buttons_and_the_fingers_down() {
    use crate::ipc::proto::{Request, SeatInfo, TouchPointInfo};

    fn seat(fx: &mut Fixture) -> SeatInfo {
        let answer = crate::ipc::server::handle(&mut fx.state, Request::Inputs);
        assert!(answer.ok, "{answer:?}");
        serde_json::from_value(answer.data).unwrap()
    }

    let mut fx = Fixture::new();
    let request = |fx: &mut Fixture, r: Request| {
        let answer = crate::ipc::server::handle(&mut fx.state, r);
        assert!(answer.ok, "{answer:?}");
    };
    request(&mut fx, Request::PointerMove { x: 100.5, y: 40.0 });
    request(
        &mut fx,
        Request::TouchDown {
            slot: 1,
            x: 300.0,
            y: 200.0,
        },
    );
    request(
        &mut fx,
        Request::TouchDown {
            slot: 0,
            x: 10.0,
            y: 20.0,
        },
    );
    request(
        &mut fx,
        Request::TouchMove {
            slot: 1,
            x: 310.0,
            y: 220.0,
        },
    );
    // A button held (a drag, a stylus's tip down) shows until released.
    fx.state.pointer_button(crate::input::BTN_LEFT, true);
    fx.state.pointer_button(crate::input::BTN_RIGHT, true);
    let s = seat(&mut fx);
    assert!(s.devices.is_empty(), "{s:?}");
    assert_eq!(s.pointer, [100.5, 40.0]);
    assert_eq!(s.buttons, [0x110, 0x111]);
    fx.state.pointer_button(crate::input::BTN_LEFT, false);
    assert_eq!(seat(&mut fx).buttons, [0x111]);
    fx.state.pointer_button(crate::input::BTN_RIGHT, false);
    assert!(seat(&mut fx).buttons.is_empty());
    assert_eq!(
        s.touch,
        [
            TouchPointInfo {
                slot: Some(0),
                x: 10.0,
                y: 20.0
            },
            TouchPointInfo {
                slot: Some(1),
                x: 310.0,
                y: 220.0
            }
        ]
    );
    request(&mut fx, Request::TouchUp { slot: 1 });
    request(&mut fx, Request::TouchUp { slot: 0 });
    assert!(seat(&mut fx).touch.is_empty());
}
