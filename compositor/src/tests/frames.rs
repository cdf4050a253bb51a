//! What a frame hands back to clients, and what the layout recomputes for it.

use smithay::desktop::Window;
use wayland_client::Proxy;

use super::client::TestClient;
use super::fixture::Fixture;
use crate::backend::headless::VirtualOutput;

/// Client requests only: no refresh timer runs, so no frame is made.
fn requests_only(fx: &mut Fixture, c: &mut TestClient) {
    c.pump();
    fx.display.dispatch_clients(&mut fx.state).unwrap();
    fx.display.flush_clients().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    c.pump();
}

fn commit_buffer(c: &mut TestClient, t: &super::client::Toplevel, argb: u32) -> u32 {
    let buffer = c.buffer(1280, 720, argb);
    t.surface.attach(Some(&buffer), 0, 0);
    t.surface.damage_buffer(0, 0, 1280, 720);
    t.surface.commit();
    buffer.id().protocol_id()
}

#[test]
fn a_replaced_buffer_goes_back_with_the_next_frame_and_never_piles_up() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let t = fx.map_toplevel(&mut c, "a", (0, 0), 0xff00_0000);
    assert!(fx.next_frame(&mut c, &t.surface));
    c.data.released.clear();

    let b = commit_buffer(&mut c, &t, 0xff00_ff00);
    requests_only(&mut fx, &mut c);
    assert!(
        c.data.released.is_empty(),
        "the shown buffer went back before a frame replaced it: {:?}",
        c.data.released
    );

    // A second commit before any frame: the first replaced buffer goes back at
    // once, so a double-buffered client always has one to draw into.
    let _c2 = commit_buffer(&mut c, &t, 0xff00_00ff);
    requests_only(&mut fx, &mut c);
    assert_eq!(c.data.released.len(), 1, "{:?}", c.data.released);
    assert_ne!(c.data.released[0], b, "{:?}", c.data.released);

    assert!(fx.next_frame(&mut c, &t.surface));
    assert_eq!(c.data.released.len(), 2, "{:?}", c.data.released);
    assert_eq!(c.data.released[1], b);
}

#[test]
fn a_replaced_buffer_goes_back_without_a_frame_after_a_while() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let t = fx.map_toplevel(&mut c, "a", (0, 0), 0xff00_0000);
    assert!(fx.next_frame(&mut c, &t.surface));
    c.data.released.clear();
    // No output left to make a frame: the timer hands the buffer back.
    let output = fx.state.outputs()[0].clone();
    fx.state.space.unmap_output(&output);
    fx.dispatch();
    commit_buffer(&mut c, &t, 0xff00_ff00);
    requests_only(&mut fx, &mut c);
    assert!(c.data.released.is_empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while c.data.released.is_empty() && std::time::Instant::now() < deadline {
        fx.event_loop
            .dispatch(Some(std::time::Duration::from_millis(10)), &mut fx.state)
            .unwrap();
        fx.display.flush_clients().unwrap();
        c.pump();
    }
    assert_eq!(c.data.released.len(), 1, "{:?}", c.data.released);
}

fn window(fx: &Fixture) -> Window {
    fx.state.space.elements().next().unwrap().clone()
}

fn output_names(fx: &Fixture, w: &Window) -> Vec<String> {
    let mut v: Vec<String> = fx
        .state
        .space
        .outputs_for_element(w)
        .iter()
        .map(|o| o.name())
        .collect();
    v.sort();
    v
}

/// The space is refreshed only when something it depends on changed, and
/// then the outputs a window is on follow its size and its moves.
#[test]
fn output_membership_follows_sizes_and_moves_without_a_refresh_every_frame() {
    let mut fx = Fixture::new();
    fx.state
        .add_virtual_output(VirtualOutput {
            width: 800,
            height: 600,
            refresh_mhz: 60_000,
            scale: 1.0,
        })
        .unwrap();
    let (mut c, _) = fx.add_client();
    let t = fx.map_toplevel(&mut c, "a", (0, 0), 0xff00_0000);
    assert!(fx.next_frame(&mut c, &t.surface));
    let w = window(&fx);
    assert_eq!(output_names(&fx, &w), ["Virtual-1"]);

    // New contents at the same size: nothing to recompute.
    commit_buffer(&mut c, &t, 0xff10_1010);
    requests_only(&mut fx, &mut c);
    assert!(!fx.state.shell.watch.refresh(&mut fx.state.space));

    // Wider than the first output: the window reaches into the second.
    let wide = c.buffer(1400, 720, 0xff20_2020);
    t.surface.attach(Some(&wide), 0, 0);
    t.surface.damage_buffer(0, 0, 1400, 720);
    t.surface.commit();
    assert!(fx.next_frame(&mut c, &t.surface));
    assert_eq!(output_names(&fx, &w), ["Virtual-1", "Virtual-2"]);
    assert!(!fx.state.shell.watch.refresh(&mut fx.state.space));

    // Moved wholly onto the second output, with no commit at all.
    fx.state.space.map_element(w.clone(), (1300, 0), false);
    assert!(fx.state.shell.watch.refresh(&mut fx.state.space));
    assert_eq!(output_names(&fx, &w), ["Virtual-2"]);

    // A subsurface makes every commit of the window count.
    let sub_surface = c
        .data
        .compositor
        .as_ref()
        .unwrap()
        .create_surface(&c.qh(), ());
    let _sub = c.data.subcompositor.as_ref().unwrap().get_subsurface(
        &sub_surface,
        &t.surface,
        &c.qh(),
        (),
    );
    let small = c.buffer(10, 10, 0xffff_ffff);
    sub_surface.attach(Some(&small), 0, 0);
    sub_surface.commit();
    t.surface.commit();
    requests_only(&mut fx, &mut c);
    assert!(fx.state.shell.watch.refresh(&mut fx.state.space));
    t.surface.commit();
    requests_only(&mut fx, &mut c);
    assert!(fx.state.shell.watch.refresh(&mut fx.state.space));
}

/// Runs the loop, frames included, until `done` is set; false after two seconds.
fn until_done(fx: &mut Fixture, c: &mut TestClient, done: &std::sync::atomic::AtomicBool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        c.pump();
        fx.dispatch();
        c.pump();
        if done.load(std::sync::atomic::Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    false
}

#[test]
fn a_frame_walks_only_windows_that_committed_and_every_callback_arrives() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let a = fx.map_toplevel(&mut c, "a", (0, 0), 0xff00_0000);
    let b = fx.map_toplevel(&mut c, "b", (0, 0), 0xff00_00ff);
    assert!(fx.next_frame(&mut c, &a.surface));
    assert!(fx.state.frames_owed.is_empty(), "a frame pays all it owes");

    // Only the window that committed is owed a walk.
    b.surface.commit();
    requests_only(&mut fx, &mut c);
    let owed: Vec<_> = fx.state.frames_owed.iter().cloned().collect();
    let b_id = window_of(&fx, "b");
    assert_eq!(owed, [b_id]);
    assert!(fx.next_frame(&mut c, &b.surface));

    // A popup's commit makes its window owed: its callback arrives.
    let qh = c.qh();
    let popup = c.popup(&b.xdg_surface, (60, 40), (20, 20, 20, 20));
    let surface = popup.surface.clone();
    fx.roundtrip(&mut c);
    let buffer = c.buffer(60, 40, 0xff00_ff00);
    surface.attach(Some(&buffer), 0, 0);
    surface.damage_buffer(0, 0, 60, 40);
    assert!(
        fx.next_frame(&mut c, &surface),
        "the popup's frame callback"
    );

    // A synchronized subsurface's callback comes with its parent's commit.
    let above = c.data.compositor.clone().unwrap().create_surface(&qh, ());
    let _sub = c
        .data
        .subcompositor
        .clone()
        .unwrap()
        .get_subsurface(&above, &a.surface, &qh, ());
    let small = c.buffer(10, 10, 0xffff_ffff);
    above.attach(Some(&small), 0, 0);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    above.frame(&qh, done.clone());
    above.commit();
    requests_only(&mut fx, &mut c);
    assert!(
        fx.state.frames_owed.is_empty(),
        "cached until the parent's commit: {:?}",
        fx.state.frames_owed
    );
    a.surface.commit();
    assert!(
        until_done(&mut fx, &mut c, &done),
        "the subsurface's frame callback"
    );
}

#[test]
fn a_new_window_gets_its_first_callback_from_the_first_vblank_after_its_commit() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let t = fx.configured_toplevel(&mut c, "new");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    t.surface.frame(&c.qh(), done.clone());
    c.attach_configured(&t.surface, (200, 100), 0xff00_ff00);
    requests_only(&mut fx, &mut c);
    let output = fx.state.outputs()[0].name();
    let vblanks = |fx: &Fixture| match &fx.state.backend {
        crate::backend::Backend::Headless(h) => h.vblanks(&output),
        _ => unreachable!("the fixture runs headless"),
    };
    let before = vblanks(&fx);
    assert!(until_done(&mut fx, &mut c, &done), "no frame callback");
    // The window joins its output as that vblank's frame is planned, and the
    // callbacks go out after: its first frame must not be a vblank late.
    assert_eq!(vblanks(&fx) - before, 1, "the callback waited a vblank");
}

/// The root surface id of the window `app_id`.
fn window_of(fx: &Fixture, app_id: &str) -> smithay::reexports::wayland_server::backend::ObjectId {
    use smithay::reexports::wayland_server::Resource;
    let w = fx
        .state
        .space
        .elements()
        .find(|w| crate::shell::app_id_and_title(w).0.as_deref() == Some(app_id))
        .unwrap();
    w.toplevel().unwrap().wl_surface().id()
}
