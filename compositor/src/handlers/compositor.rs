//! wl_compositor, wl_shm, buffers and the small surface protocols (viewporter,
//! fractional-scale, presentation-time, single-pixel-buffer).

use smithay::backend::renderer::utils::{
    CommitCounter, RendererSurfaceStateUserData, SurfaceView, on_commit_buffer_handler,
};
use smithay::desktop::{PopupKind, find_popup_root_surface, layer_map_for_output};
use smithay::reexports::wayland_server::backend::ObjectId;
use smithay::reexports::wayland_server::protocol::{wl_buffer, wl_surface::WlSurface};
use smithay::reexports::wayland_server::{Client, Resource};
use smithay::utils::{Logical, Rectangle, Transform};
use smithay::wayland::buffer::BufferHandler;
use smithay::wayland::compositor::{
    CompositorClientState, CompositorHandler, CompositorState, SurfaceAttributes,
    add_pre_commit_hook, get_children, get_parent, is_sync_subsurface, with_states,
};
use smithay::wayland::fractional_scale::{FractionalScaleHandler, with_fractional_scale};
use smithay::wayland::shell::wlr_layer::LayerSurfaceData;
use smithay::wayland::shm::{ShmHandler, ShmState};
use smithay::{
    delegate_compositor, delegate_fractional_scale, delegate_presentation, delegate_shm,
    delegate_single_pixel_buffer, delegate_viewporter,
};

use crate::state::{ClientState, Tessera};

impl CompositorHandler for Tessera {
    fn compositor_state(&mut self) -> &mut CompositorState {
        &mut self.compositor_state
    }

    fn client_compositor_state<'a>(&self, client: &'a Client) -> &'a CompositorClientState {
        match client.get_data::<ClientState>() {
            Some(data) => &data.compositor,
            None => {
                // Every client is inserted with a ClientState; smithay needs a value
                // anyway, so fall back to a shared empty one.
                static EMPTY: std::sync::OnceLock<CompositorClientState> =
                    std::sync::OnceLock::new();
                EMPTY.get_or_init(CompositorClientState::default)
            }
        }
    }

    fn new_surface(&mut self, surface: &WlSurface) {
        // The frame requests a commit carries, for telling a commit that only
        // asks for a frame callback (`requests_dispatched`).
        add_pre_commit_hook::<Self, _>(surface, |state, _, surface| {
            state.frame_requests = with_states(surface, |states| {
                let mut attributes = states.cached_state.get::<SurfaceAttributes>();
                attributes.pending().frame_callbacks.len()
            });
        });
    }

    fn commit(&mut self, surface: &WlSurface) {
        let frame_requests = std::mem::take(&mut self.frame_requests);
        CommitStamp::record(surface);
        if is_sync_subsurface(surface) {
            // Applied with its parent's commit, buffers and all.
            self.needs_redraw = true;
            return;
        }
        self.retire_replaced_buffers(surface);
        let shown = Shown::of(surface);
        on_commit_buffer_handler::<Self>(surface);
        let mut root = surface.clone();
        while let Some(parent) = get_parent(&root) {
            root = parent;
        }
        // What was kept of the window shows what this commit replaces, unless
        // the commit left everything its elements are made of as it was: a
        // lone surface committing for a frame callback alone, or for state its
        // elements do not show. A surface with subsurfaces may have gained one.
        let same = &root == surface
            && shown.is_some()
            && shown == Shown::of(surface)
            && get_children(surface).is_empty();
        if !same {
            self.kept.get_mut().forget(&root);
        }
        let window = self
            .space
            .elements()
            .find(|w| w.toplevel().is_some_and(|t| t.wl_surface() == &root))
            .cloned();
        match window {
            Some(window) if &root == surface => {
                self.frames_owed.insert(root.id());
                window.on_commit();
                let (before, extent) = record_extent(&window, surface);
                self.shell.watch.committed(before, extent);
                if same && before == Some(extent) {
                    // Nothing it shows changed (contents, place, size, shape,
                    // tiling): it wants its frame callback, not a frame.
                    self.needs_frame = true;
                    self.quiet_requests += 1 + frame_requests;
                } else {
                    self.needs_redraw = true;
                }
                // A mapped toplevel: not a popup, a layer or a window to map,
                // and the commit every animating client makes every frame.
                return;
            }
            Some(window) => {
                self.frames_owed.insert(root.id());
                window.on_commit();
                self.shell.watch.invalidate();
            }
            None => {
                self.shell.watch.invalidate();
                if let Some(popup) = self.popups.find_popup(&root) {
                    // A window's popups are part of its elements. Until its own
                    // next commit records that it has them, it is not kept: a
                    // popup's subsurface can unmap without any commit.
                    self.kept.get_mut().clear();
                    match find_popup_root_surface(&popup) {
                        Ok(parent) => {
                            self.frames_owed.insert(parent.id());
                            if let Some(window) =
                                self.shell.window_for_surface(&self.space, &parent)
                            {
                                crate::shell::meta(&window, |m| m.extent = None);
                            }
                        }
                        // A popup whose parent is gone: owe every window a walk
                        // rather than lose its callbacks.
                        Err(_) => {
                            let roots = self.space.elements().filter_map(|w| w.toplevel());
                            let ids: Vec<_> = roots.map(|t| t.wl_surface().id()).collect();
                            self.frames_owed.extend(ids);
                        }
                    }
                } else {
                    // A toplevel this commit may map.
                    self.frames_owed.insert(root.id());
                }
            }
        }
        // Not a mapped toplevel's own commit: a popup, a subsurface, a layer
        // or a window about to map, each of which may change the screen.
        self.needs_redraw = true;
        if &root == surface {
            self.initial_configure(surface);
            self.map_if_ready(surface);
            // A window that has just mapped: what its later commits are
            // compared with, and what lets its elements be kept.
            if let Some(window) = self.shell.window_for_surface(&self.space, surface) {
                record_extent(&window, surface);
            }
        }
        self.popups.commit(surface);
        if let Some(PopupKind::Xdg(popup)) = self.popups.find_popup(surface)
            && !popup.is_initial_configure_sent()
        {
            // A popup's first configure carries the geometry its positioner asked for.
            let _ = popup.send_configure();
        }
        self.layer_commit(surface);
    }

    fn destroyed(&mut self, surface: &WlSurface) {
        self.needs_redraw = true;
        self.frames_owed.remove(&surface.id());
        // A subsurface or popup that went away shrinks its window's extent
        // without a commit of the window.
        self.shell.watch.invalidate();
        self.kept.get_mut().clear();
    }
}

/// What a surface's render elements are made of (smithay's
/// `WaylandSurfaceRenderElement::from_surface`): its buffer, the damage counted
/// on it, how it is scaled, turned, cropped and placed, and its opaque area.
/// Equal before and after a commit, the elements built before it still show
/// the surface, and still hold the buffer it shows and no other.
#[derive(PartialEq)]
struct Shown {
    buffer: Option<ObjectId>,
    commit: CommitCounter,
    view: Option<SurfaceView>,
    scale: i32,
    transform: Transform,
    opaque: Option<Vec<Rectangle<i32, Logical>>>,
}

impl Shown {
    fn of(surface: &WlSurface) -> Option<Self> {
        with_states(surface, |states| {
            let state = states.data_map.get::<RendererSurfaceStateUserData>()?;
            let state = state.lock().ok()?;
            Some(Shown {
                buffer: state.buffer().map(|b| b.id()),
                commit: state.current_commit(),
                view: state.view(),
                scale: state.buffer_scale(),
                transform: state.buffer_transform(),
                opaque: state.opaque_regions().map(<[_]>::to_vec),
            })
        })
    }
}

/// Records `window`'s extent after a commit of its root surface `root`;
/// returns the one it replaces and the new one.
fn record_extent(
    window: &smithay::desktop::Window,
    root: &WlSurface,
) -> (
    Option<crate::shell::watch::Extent>,
    crate::shell::watch::Extent,
) {
    let extent = crate::shell::watch::Extent::of(window, root);
    (
        crate::shell::meta(window, |m| m.extent.replace(extent)),
        extent,
    )
}

/// How many commits a surface made and when the last one came: `msg windows`
/// shows it, so a client that stopped committing can be told from one the
/// compositor left waiting.
#[derive(Debug, Default)]
pub struct CommitStamp {
    count: u64,
    /// Commits that attached a new buffer.
    buffers: u64,
    last: Option<std::time::Instant>,
}

impl CommitStamp {
    fn record(surface: &WlSurface) {
        with_states(surface, |states| {
            let attached = matches!(
                states
                    .cached_state
                    .get::<smithay::wayland::compositor::SurfaceAttributes>()
                    .current()
                    .buffer,
                Some(smithay::wayland::compositor::BufferAssignment::NewBuffer(_))
            );
            let stamp = states
                .data_map
                .get_or_insert_threadsafe(|| std::sync::Mutex::new(CommitStamp::default()));
            if let Ok(mut stamp) = stamp.lock() {
                stamp.count += 1;
                stamp.buffers += u64::from(attached);
                stamp.last = Some(std::time::Instant::now());
            }
        });
    }

    /// The commit count, how many attached a buffer, and the milliseconds since
    /// the last commit.
    pub fn read(surface: &WlSurface) -> (u64, u64, Option<u64>) {
        with_states(surface, |states| {
            states
                .data_map
                .get::<std::sync::Mutex<CommitStamp>>()
                .and_then(|s| s.lock().ok().map(|s| (s.count, s.buffers, s.last)))
                .map(|(count, buffers, last)| {
                    let ms =
                        last.map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX));
                    (count, buffers, ms)
                })
                .unwrap_or((0, 0, None))
        })
    }
}

impl Tessera {
    fn layer_commit(&mut self, surface: &WlSurface) {
        let outputs = self.outputs();
        for output in outputs {
            let mut map = layer_map_for_output(&output);
            let Some(layer) = map
                .layer_for_surface(surface, smithay::desktop::WindowSurfaceType::TOPLEVEL)
                .cloned()
            else {
                continue;
            };
            let changed = map.arrange();
            let initial_sent = with_states(surface, |states| {
                states
                    .data_map
                    .get::<LayerSurfaceData>()
                    .is_some_and(|d| d.lock().is_ok_and(|d| d.initial_configure_sent))
            });
            drop(map);
            if !initial_sent {
                layer.layer_surface().send_configure();
            }
            if changed {
                self.rearrange(&output);
            }
            return;
        }
    }
}

impl BufferHandler for Tessera {
    fn buffer_destroyed(&mut self, _buffer: &wl_buffer::WlBuffer) {}
}

impl ShmHandler for Tessera {
    fn shm_state(&self) -> &ShmState {
        &self.shm_state
    }
}

impl FractionalScaleHandler for Tessera {
    fn new_fractional_scale(&mut self, surface: WlSurface) {
        let scale = self
            .focused_output()
            .map_or(1.0, |o| o.current_scale().fractional_scale());
        with_states(&surface, |states| {
            with_fractional_scale(states, |fs| fs.set_preferred_scale(scale));
        });
    }
}

delegate_compositor!(Tessera);
delegate_shm!(Tessera);
delegate_viewporter!(Tessera);
delegate_fractional_scale!(Tessera);
delegate_presentation!(Tessera);
delegate_single_pixel_buffer!(Tessera);
