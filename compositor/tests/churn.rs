//! 200 clients connect, map a window and disconnect against the real binary; the
//! compositor keeps rendering and its memory comes back to where it was.

mod common;

use std::time::Duration;

use common::Session;
use tessera_bench_client::ShmWindow;
use wayland_client::Connection;

/// One client's whole life: connect, map a 640x480 window, wait until a frame with
/// it has been rendered (so its buffer really went through the renderer, a texture
/// on GLES), vanish without cleaning up.
fn one_client(session: &Session) {
    let path = session.runtime.path().join(&session.display);
    let stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let conn = Connection::from_socket(stream).unwrap();
    let (mut window, mut queue) = ShmWindow::open(&conn, (640, 480), "churn", 0, false).unwrap();
    window.draw(&queue.handle(), true);
    while window.frames == 0 {
        queue.blocking_dispatch(&mut window).unwrap();
    }
}

#[test]
fn two_hundred_clients_leave_no_memory_behind() {
    // GLES, so that each window's buffer becomes a texture: a leaked one is 1.2 MiB.
    let session = Session::start("gles", "1280x720");
    // Warm-up: the first clients grow caches and allocator arenas for good.
    for _ in 0..20 {
        one_client(&session);
    }
    session.wait_windows("the warm-up windows to go", |w| w.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    let baseline = session.rss_kib();

    for _ in 0..200 {
        one_client(&session);
    }
    session.wait_windows("every churn window to go", |w| w.is_empty());
    // Frames keep coming after the churn.
    let dir = tempfile::tempdir().unwrap();
    let shot = session.screenshot(dir.path(), "after.png");
    assert_eq!((shot.width, shot.height), (1280, 720));
    std::thread::sleep(Duration::from_millis(300));
    let after = session.rss_kib();
    eprintln!("tessera RSS: {baseline} KiB after warm-up, {after} KiB after 200 clients");
    assert!(
        after * 10 <= baseline * 11,
        "RSS grew from {baseline} KiB to {after} KiB (> 10%) over 200 clients"
    );
}
