//! 200 clients connect, map a window and disconnect against the real binary; the
//! compositor keeps rendering and its memory comes back to where it was.

mod common;

use std::os::fd::AsFd;
use std::time::Duration;

use common::Session;
use wayland_client::globals::{GlobalListContents, registry_queue_init};
use wayland_client::protocol::{
    wl_buffer::WlBuffer, wl_callback, wl_callback::WlCallback, wl_compositor::WlCompositor,
    wl_registry::WlRegistry, wl_shm, wl_shm::WlShm, wl_shm_pool::WlShmPool, wl_surface::WlSurface,
};
use wayland_client::{Connection, Dispatch, QueueHandle, delegate_noop};
use wayland_protocols::xdg::shell::client::{
    xdg_surface::{self, XdgSurface},
    xdg_toplevel::XdgToplevel,
    xdg_wm_base::{self, XdgWmBase},
};

#[derive(Default)]
struct Churn {
    configured: bool,
    presented: bool,
}

/// One client's whole life: connect, map a 640x480 window, wait for the
/// compositor to have taken the buffer, vanish without cleaning up.
fn one_client(session: &Session) {
    let path = session.runtime.path().join(&session.display);
    let stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let conn = Connection::from_socket(stream).unwrap();
    let (globals, mut queue) = registry_queue_init::<Churn>(&conn).unwrap();
    let qh = queue.handle();
    let compositor: WlCompositor = globals.bind(&qh, 4..=6, ()).unwrap();
    let shm: WlShm = globals.bind(&qh, 1..=1, ()).unwrap();
    let wm: XdgWmBase = globals.bind(&qh, 1..=5, ()).unwrap();
    let surface = compositor.create_surface(&qh, ());
    let xdg = wm.get_xdg_surface(&surface, &qh, ());
    let toplevel = xdg.get_toplevel(&qh, ());
    toplevel.set_app_id("churn".into());
    surface.commit();
    let mut state = Churn::default();
    while !state.configured {
        queue.blocking_dispatch(&mut state).unwrap();
    }
    let (w, h) = (640, 480);
    let file = tempfile::tempfile().unwrap();
    file.set_len((w * h * 4) as u64).unwrap();
    let pool = shm.create_pool(file.as_fd(), w * h * 4, &qh, ());
    let buffer = pool.create_buffer(0, w, h, w * 4, wl_shm::Format::Xrgb8888, &qh, ());
    surface.attach(Some(&buffer), 0, 0);
    surface.damage_buffer(0, 0, w, h);
    // The frame callback comes once a frame with this window has been rendered, so
    // every client's buffer really went through the renderer (a texture on GLES).
    surface.frame(&qh, ());
    surface.commit();
    while !state.presented {
        queue.blocking_dispatch(&mut state).unwrap();
    }
    // Dropping the connection without destroying anything: the compositor cleans up.
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

impl Dispatch<WlRegistry, GlobalListContents> for Churn {
    fn event(
        _: &mut Self,
        _: &WlRegistry,
        _: wayland_client::protocol::wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<XdgWmBase, ()> for Churn {
    fn event(
        _: &mut Self,
        wm: &XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            wm.pong(serial);
        }
    }
}

impl Dispatch<XdgSurface, ()> for Churn {
    fn event(
        state: &mut Self,
        xdg: &XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            xdg.ack_configure(serial);
            state.configured = true;
        }
    }
}

impl Dispatch<WlCallback, ()> for Churn {
    fn event(
        state: &mut Self,
        _: &WlCallback,
        event: wl_callback::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event {
            state.presented = true;
        }
    }
}

delegate_noop!(Churn: ignore WlCompositor);
delegate_noop!(Churn: ignore WlShm);
delegate_noop!(Churn: ignore WlShmPool);
delegate_noop!(Churn: ignore WlBuffer);
delegate_noop!(Churn: ignore WlSurface);
delegate_noop!(Churn: ignore XdgToplevel);
