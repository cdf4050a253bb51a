//! The pointer on screen: the theme's cursors, a client's cursor surface,
//! cursor-shape-v1, and when the pointer shows at all.

use std::path::{Path, PathBuf};

use wayland_protocols::wp::cursor_shape::v1::client::wp_cursor_shape_device_v1::Shape;

use super::client::TestClient;
use super::fixture::{Fixture, pixel};
use crate::backend::Capture;
use crate::cursor::Cursor;
use crate::cursor::theme::{self, CursorImage};

const RED: [u8; 4] = [255, 0, 0, 255];
const BLUE: [u8; 4] = [0, 0, 255, 255];
const GREEN: [u8; 4] = [0, 255, 0, 255];

/// An 8x8 cursor of one colour (`argb` bytes as the file stores them).
fn solid(hotspot: (u32, u32), bgra: [u8; 4]) -> CursorImage {
    CursorImage {
        nominal: 24,
        width: 8,
        height: 8,
        hotspot,
        delay_ms: 0,
        pixels: bgra.repeat(64),
    }
}

/// A theme `test` whose `default` is red with its hotspot at (2, 3) and whose
/// `text` is blue with its hotspot at (0, 0).
fn test_theme(root: &Path) -> Vec<PathBuf> {
    let cursors = root.join("test/cursors");
    std::fs::create_dir_all(&cursors).unwrap();
    std::fs::write(
        cursors.join("default"),
        theme::xcursor_file(&[solid((2, 3), [0, 0, 255, 255])]),
    )
    .unwrap();
    std::fs::write(
        cursors.join("text"),
        theme::xcursor_file(&[solid((0, 0), [255, 0, 0, 255])]),
    )
    .unwrap();
    vec![root.to_path_buf()]
}

fn with_theme(fx: &mut Fixture, search: Vec<PathBuf>, theme: &str, hide_when_typing: bool) {
    let mut config = fx.state.config.cursor.clone();
    config.theme = theme.into();
    config.hide_when_typing = hide_when_typing;
    fx.state.cursor = Cursor::new(&config, search);
}

/// The pixels of `colour` in a capture, as (x0, y0, x1, y1) inclusive.
fn bounds_of(c: &Capture, colour: [u8; 4]) -> Option<(u32, u32, u32, u32)> {
    let mut b: Option<(u32, u32, u32, u32)> = None;
    for y in 0..c.height {
        for x in 0..c.width {
            if pixel(c, x, y) == colour {
                b = Some(match b {
                    None => (x, y, x, y),
                    Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                });
            }
        }
    }
    b
}

#[test]
fn the_pointer_shows_once_it_moves_with_the_themes_default_at_its_hotspot() {
    let dir = tempfile::tempdir().unwrap();
    let mut fx = Fixture::new();
    with_theme(&mut fx, test_theme(dir.path()), "test", true);

    // No pointer event yet: an appliance driven by keys or touch shows no arrow.
    assert_eq!(bounds_of(&fx.screenshot_with_cursor(), RED), None);

    fx.state.pointer_move((100.0, 100.0).into());
    let shown = fx.screenshot_with_cursor();
    assert_eq!(bounds_of(&shown, RED), Some((98, 97, 105, 104)));
    // Screenshots leave it out unless asked, as grim does.
    assert_eq!(bounds_of(&fx.screenshot(), RED), None);

    // Typing hides it until the pointer moves again.
    fx.state.handle_key(30, true, 0);
    fx.state.handle_key(30, false, 0);
    assert_eq!(bounds_of(&fx.screenshot_with_cursor(), RED), None);
    fx.state.pointer_move((640.0, 10.0).into());
    assert_eq!(
        bounds_of(&fx.screenshot_with_cursor(), RED),
        Some((638, 7, 645, 14))
    );

    // With hide_when_typing off, keys leave it alone.
    with_theme(&mut fx, test_theme(dir.path()), "test", false);
    fx.state.pointer_move((20.0, 20.0).into());
    fx.state.handle_key(30, true, 0);
    fx.state.handle_key(30, false, 0);
    assert_eq!(
        bounds_of(&fx.screenshot_with_cursor(), RED),
        Some((18, 17, 25, 24))
    );
    // A touch hides it whatever the typing setting, until it moves again.
    fx.state.touch_tap((400.0, 300.0).into());
    assert_eq!(bounds_of(&fx.screenshot_with_cursor(), RED), None);
    fx.state.pointer_move((20.0, 20.0).into());
    assert_eq!(
        bounds_of(&fx.screenshot_with_cursor(), RED),
        Some((18, 17, 25, 24))
    );
}

/// A client with a maximized window under the pointer, and the serial of its
/// pointer enter.
fn client_under_pointer(fx: &mut Fixture) -> (TestClient, u32) {
    let (mut c, _) = fx.add_client();
    fx.roundtrip(&mut c);
    let t = fx.map_toplevel(&mut c, "under", (0, 0), 0xff80_8080);
    assert!(fx.next_frame(&mut c, &t.surface));
    fx.state.pointer_move((300.0, 200.0).into());
    fx.roundtrip(&mut c);
    let serial = c.data.pointer_enter_serial.expect("no wl_pointer.enter");
    (c, serial)
}

#[test]
fn a_client_cursor_surface_is_drawn_at_its_hotspot_and_can_hide_the_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let mut fx = Fixture::new();
    with_theme(&mut fx, test_theme(dir.path()), "test", true);
    let (mut c, serial) = client_under_pointer(&mut fx);
    assert_eq!(
        bounds_of(&fx.screenshot_with_cursor(), RED),
        Some((298, 197, 305, 204)),
        "the theme's default over a client that set no cursor"
    );

    let surface = c
        .data
        .compositor
        .as_ref()
        .unwrap()
        .create_surface(&c.qh(), ());
    let buffer = c.buffer(16, 16, 0xff00_ff00);
    surface.attach(Some(&buffer), 0, 0);
    surface.damage_buffer(0, 0, 16, 16);
    surface.commit();
    let pointer = c.data.pointer.clone().unwrap();
    pointer.set_cursor(serial, Some(&surface), 4, 5);
    fx.roundtrip(&mut c);
    let shot = fx.screenshot_with_cursor();
    assert_eq!(bounds_of(&shot, GREEN), Some((296, 195, 311, 210)));
    assert_eq!(bounds_of(&shot, RED), None);

    // An animated client cursor gets its frame callbacks.
    assert!(fx.next_frame(&mut c, &surface));

    pointer.set_cursor(serial, None, 0, 0);
    fx.roundtrip(&mut c);
    let hidden = fx.screenshot_with_cursor();
    assert_eq!(bounds_of(&hidden, GREEN), None);
    assert_eq!(bounds_of(&hidden, RED), None);
}

#[test]
fn cursor_shape_v1_shapes_come_from_the_theme_and_a_missing_one_is_its_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut fx = Fixture::new();
    with_theme(&mut fx, test_theme(dir.path()), "test", true);
    let (mut c, serial) = client_under_pointer(&mut fx);
    let pointer = c.data.pointer.clone().unwrap();
    let manager = c.data.cursor_shape.clone().expect("no cursor-shape global");
    let device = manager.get_pointer(&pointer, &c.qh(), ());

    device.set_shape(serial, Shape::Text);
    fx.roundtrip(&mut c);
    let shot = fx.screenshot_with_cursor();
    assert_eq!(bounds_of(&shot, BLUE), Some((300, 200, 307, 207)));
    assert_eq!(bounds_of(&shot, RED), None);

    device.set_shape(serial, Shape::Wait);
    fx.roundtrip(&mut c);
    let shot = fx.screenshot_with_cursor();
    assert_eq!(bounds_of(&shot, RED), Some((298, 197, 305, 204)));
}

#[test]
fn without_the_theme_the_builtin_arrow_is_drawn_tip_at_the_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let mut fx = Fixture::new();
    with_theme(&mut fx, vec![dir.path().to_path_buf()], "absent", true);
    fx.state.pointer_move((400.0, 300.0).into());
    let plain = fx.screenshot();
    let shot = fx.screenshot_with_cursor();
    let arrow = theme::builtin_arrow(24);
    let (hx, hy) = arrow.hotspot;
    // Every pixel of the arrow shows where it should, over the background.
    let mut drawn = 0;
    for y in 0..arrow.height {
        for x in 0..arrow.width {
            let i = ((y * arrow.width + x) * 4) as usize;
            let [b, g, r, a] = [
                arrow.pixels[i],
                arrow.pixels[i + 1],
                arrow.pixels[i + 2],
                arrow.pixels[i + 3],
            ];
            let (sx, sy) = (400 - hx + x, 300 - hy + y);
            if a == 255 {
                assert_eq!(pixel(&shot, sx, sy), [r, g, b, 255], "({x}, {y})");
                drawn += 1;
            } else {
                assert_eq!(pixel(&shot, sx, sy), pixel(&plain, sx, sy), "({x}, {y})");
            }
        }
    }
    assert!(drawn > 50, "{drawn}");
}

/// Debian's Adwaita (adwaita-icon-theme): what is drawn is its `default` cursor
/// file's 24-pixel image, as libXcursor's reader would give it.
#[test]
fn debians_adwaita_theme_draws_its_own_default_cursor() {
    let search = theme::search_path(None, None);
    let file = theme::find(&search, "Adwaita", "default")
        .expect("adwaita-icon-theme is installed by `cargo xtask deps`");
    let image =
        theme::nearest_frames(theme::parse(&std::fs::read(&file).unwrap()).unwrap(), 24).remove(0);
    let mut fx = Fixture::new();
    with_theme(&mut fx, search, "Adwaita", true);
    fx.state.pointer_move((200.0, 150.0).into());
    let plain = fx.screenshot();
    let shot = fx.screenshot_with_cursor();
    let (hx, hy) = image.hotspot;
    let mut opaque = 0;
    for y in 0..image.height {
        for x in 0..image.width {
            let i = ((y * image.width + x) * 4) as usize;
            let (sx, sy) = (200 - hx + x, 150 - hy + y);
            if image.pixels[i + 3] == 255 {
                let [b, g, r] = [image.pixels[i], image.pixels[i + 1], image.pixels[i + 2]];
                assert_eq!(pixel(&shot, sx, sy), [r, g, b, 255], "({x}, {y})");
                opaque += 1;
            } else if image.pixels[i + 3] == 0 {
                assert_eq!(pixel(&shot, sx, sy), pixel(&plain, sx, sy), "({x}, {y})");
            }
        }
    }
    assert!(opaque > 50, "{} has {opaque} opaque pixels", file.display());
}
