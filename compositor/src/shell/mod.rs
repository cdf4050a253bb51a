//! Window management: mapping, placement, focus, fullscreen, minimize. The rules
//! themselves are in [`policy`]; this module applies them to smithay objects.

pub mod lock;
pub mod policy;
pub mod watch;

use smithay::backend::renderer::element::Id;
use smithay::reexports::wayland_server::backend::ObjectId;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_config::compositor::NewWindows;

use smithay::desktop::{Space, Window, layer_map_for_output};
use smithay::output::Output;
use smithay::reexports::wayland_protocols::xdg::shell::server::xdg_toplevel;
use smithay::reexports::wayland_server::Resource;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::utils::{Logical, Point, Rectangle, SERIAL_COUNTER};
use smithay::wayland::compositor::with_states;
use smithay::wayland::shell::xdg::{SurfaceCachedState, ToplevelSurface};

use crate::state::Tessera;
use policy::{FocusStack, Placement, Role};

/// Per-window bookkeeping, kept in the window's user data.
#[derive(Debug, Default)]
pub struct WindowMeta {
    pub id: u64,
    pub dialog: bool,
    /// Geometry to return to when leaving maximize or fullscreen.
    pub restore: Option<Rectangle<i32, Logical>>,
    pub fullscreen_on: Option<Output>,
    /// Stable element ids of the window's border and dim decorations.
    decoration_ids: Option<(Id, Id)>,
    /// The window's extent at its last root commit.
    pub extent: Option<watch::Extent>,
}

impl WindowMeta {
    pub fn decoration_ids(&mut self) -> (Id, Id) {
        self.decoration_ids
            .get_or_insert_with(|| (Id::new(), Id::new()))
            .clone()
    }
}

static NEXT_WINDOW_ID: AtomicU64 = AtomicU64::new(1);

pub fn meta<T>(window: &Window, f: impl FnOnce(&mut WindowMeta) -> T) -> T {
    let cell = window.user_data().get_or_insert(|| {
        RefCell::new(WindowMeta {
            id: NEXT_WINDOW_ID.fetch_add(1, Ordering::Relaxed),
            ..WindowMeta::default()
        })
    });
    f(&mut cell.borrow_mut())
}

pub fn window_id(window: &Window) -> u64 {
    meta(window, |m| m.id)
}

/// The toplevel's app id and title, as the client last committed them.
pub fn app_id_and_title(window: &Window) -> (Option<String>, Option<String>) {
    let Some(toplevel) = window.toplevel() else {
        return (None, None);
    };
    smithay::wayland::compositor::with_states(toplevel.wl_surface(), |s| {
        s.data_map
            .get::<smithay::wayland::shell::xdg::XdgToplevelSurfaceData>()
            .and_then(|d| d.lock().ok().map(|d| (d.app_id.clone(), d.title.clone())))
            .unwrap_or_default()
    })
}

#[derive(Debug, Default)]
pub struct Shell {
    pub focus: FocusStack<Window>,
    /// Toplevels that have not attached a buffer yet.
    pub unmapped: Vec<Window>,
    pub minimized: Vec<Window>,
    /// When the space's output bookkeeping must be redone.
    pub watch: watch::SpaceWatch,
    /// The toplevels whose client set a parent (xdg_toplevel.set_parent).
    /// Almost always empty, which spares each frame reading every toplevel's
    /// parent to find the windows to dim.
    pub parented: HashSet<ObjectId>,
}

impl Shell {
    pub fn window_for_surface(&self, space: &Space<Window>, surface: &WlSurface) -> Option<Window> {
        space
            .elements()
            .chain(self.minimized.iter())
            .find(|w| w.toplevel().is_some_and(|t| t.wl_surface() == surface))
            .cloned()
    }

    pub fn all_windows<'a>(&'a self, space: &'a Space<Window>) -> impl Iterator<Item = &'a Window> {
        space.elements().chain(self.minimized.iter())
    }
}

/// The area of `output` not covered by exclusive zones, in global coordinates.
pub fn usable_area(space: &Space<Window>, output: &Output) -> Rectangle<i32, Logical> {
    let Some(geo) = space.output_geometry(output) else {
        return Rectangle::default();
    };
    let mut zone = layer_map_for_output(output).non_exclusive_zone();
    zone.loc += geo.loc;
    zone
}

impl Tessera {
    /// Where a toplevel's parent is, when it has a mapped one.
    fn parent_geometry(&self, toplevel: &ToplevelSurface) -> Option<Rectangle<i32, Logical>> {
        let parent = toplevel.parent()?;
        let window = self.shell.window_for_surface(&self.space, &parent)?;
        self.space.element_geometry(&window)
    }

    /// A toplevel's client set or cleared its parent: the parent it had and
    /// the one it has now may change dimming.
    pub fn parent_changed(&mut self, toplevel: &ToplevelSurface) {
        let id = toplevel.wl_surface().id();
        if toplevel.parent().is_some() {
            self.shell.parented.insert(id);
        } else {
            self.shell.parented.remove(&id);
        }
        self.needs_redraw = true;
    }

    pub fn new_toplevel(&mut self, surface: ToplevelSurface) {
        let window = Window::new_wayland_window(surface);
        window_id(&window);
        self.shell.unmapped.push(window);
    }

    /// Sends the first configure, with the placement the policy picks.
    pub fn initial_configure(&mut self, surface: &WlSurface) {
        let Some(window) = self
            .shell
            .unmapped
            .iter()
            .find(|w| w.toplevel().is_some_and(|t| t.wl_surface() == surface))
            .cloned()
        else {
            return;
        };
        let Some(toplevel) = window.toplevel() else {
            return;
        };
        if toplevel.is_initial_configure_sent() {
            return;
        }
        let Some(output) = self.focused_output() else {
            toplevel.send_configure();
            return;
        };
        let usable = usable_area(&self.space, &output);
        let parent = self.parent_geometry(toplevel);
        let asked_maximized =
            toplevel.with_pending_state(|s| s.states.contains(xdg_toplevel::State::Maximized));
        let role = match parent {
            Some(parent) => Role::Dialog { parent },
            None => match self.config.shell.new_windows {
                NewWindows::Floating if !asked_maximized => Role::Desktop,
                _ => Role::Normal,
            },
        };
        meta(&window, |m| m.dialog = parent.is_some());
        let (min, max) = with_states(surface, |states| {
            let mut cached = states.cached_state.get::<SurfaceCachedState>();
            let c = cached.pending();
            (c.min_size, c.max_size)
        });
        toplevel.with_pending_state(
            |s| match policy::initial_placement(role, usable, min, max) {
                Placement::Maximized(area) => {
                    s.states.set(xdg_toplevel::State::Maximized);
                    s.size = Some(area.size);
                }
                Placement::Floating { size } => {
                    s.size = (size.w > 0).then_some(size);
                }
            },
        );
        toplevel.send_configure();
    }

    /// Maps a toplevel once it has a buffer, at the place the policy gives it.
    pub fn map_if_ready(&mut self, surface: &WlSurface) {
        let Some(idx) = self
            .shell
            .unmapped
            .iter()
            .position(|w| w.toplevel().is_some_and(|t| t.wl_surface() == surface))
        else {
            return;
        };
        let has_buffer = with_states(surface, |states| {
            states
                .data_map
                .get::<smithay::backend::renderer::utils::RendererSurfaceStateUserData>()
                .is_some_and(|s| s.lock().is_ok_and(|s| s.buffer().is_some()))
        });
        if !has_buffer {
            return;
        }
        let window = self.shell.unmapped.remove(idx);
        // The window caches its geometry on commit; it was not in the space then.
        window.on_commit();
        let Some(output) = self.focused_output() else {
            return;
        };
        let usable = usable_area(&self.space, &output);
        let size = window.geometry().size;
        let parent_geo = window.toplevel().and_then(|t| self.parent_geometry(t));
        let maximized = window.toplevel().is_some_and(|t| {
            t.with_pending_state(|s| s.states.contains(xdg_toplevel::State::Maximized))
        });
        let loc = if maximized {
            usable.loc
        } else {
            let centre = policy::centred(size, parent_geo.unwrap_or(usable), usable);
            let taken: Vec<_> = self
                .space
                .elements()
                .filter_map(|w| self.space.element_location(w))
                .collect();
            policy::cascade(centre, size, &taken, usable)
        };
        tracing::debug!(
            id = window_id(&window),
            ?loc,
            ?size,
            maximized,
            "map window"
        );
        self.space.map_element(window.clone(), loc, true);
        self.focus_window(Some(window));
    }

    /// Gives `window` the keyboard focus, raises it and marks it activated.
    pub fn focus_window(&mut self, window: Option<Window>) {
        if self.lock.is_locked() {
            return;
        }
        if let Some(w) = &window {
            if let Some(pos) = self.shell.minimized.iter().position(|m| m == w) {
                let w = self.shell.minimized.remove(pos);
                let loc = meta(&w, |m| m.restore.map(|r| r.loc)).unwrap_or_default();
                self.space.map_element(w, loc, true);
            }
            self.space.raise_element(w, true);
            self.shell.focus.activate(w.clone());
        }
        for e in self.space.elements() {
            e.set_activated(Some(e) == window.as_ref());
            if let Some(t) = e.toplevel() {
                t.send_pending_configure();
            }
        }
        let surface = window.and_then(|w| w.toplevel().map(|t| t.wl_surface().clone()));
        if let Some(kb) = self.seat.get_keyboard() {
            kb.set_focus(self, surface, SERIAL_COUNTER.next_serial());
        }
        self.needs_redraw = true;
    }

    pub fn toplevel_destroyed(&mut self, surface: &ToplevelSurface) {
        let wl = surface.wl_surface();
        self.shell.parented.remove(&wl.id());
        self.shell
            .unmapped
            .retain(|w| w.toplevel().is_some_and(|t| t.wl_surface() != wl));
        let Some(window) = self.shell.window_for_surface(&self.space, wl) else {
            return;
        };
        self.shell.minimized.retain(|w| *w != window);
        self.space.unmap_elem(&window);
        let was_front = self.shell.focus.front() == Some(&window);
        let next = self.shell.focus.remove(&window);
        if was_front {
            self.focus_window(next);
        }
        self.needs_redraw = true;
    }

    pub fn set_fullscreen(&mut self, window: &Window, on: bool, output: Option<Output>) {
        let Some(toplevel) = window.toplevel() else {
            return;
        };
        if on {
            let output = output
                .or_else(|| self.space.outputs_for_element(window).into_iter().next())
                .or_else(|| self.focused_output());
            let Some(output) = output else { return };
            let Some(geo) = self.space.output_geometry(&output) else {
                return;
            };
            let current = self.space.element_geometry(window);
            meta(window, |m| {
                if m.fullscreen_on.is_none() {
                    m.restore = current;
                }
                m.fullscreen_on = Some(output.clone());
            });
            toplevel.with_pending_state(|s| {
                s.states.set(xdg_toplevel::State::Fullscreen);
                s.size = Some(geo.size);
                s.fullscreen_output = toplevel
                    .wl_surface()
                    .client()
                    .and_then(|c| output.client_outputs(&c).next());
            });
            self.space.map_element(window.clone(), geo.loc, true);
        } else {
            let restore = meta(window, |m| {
                m.fullscreen_on = None;
                m.restore.take()
            });
            toplevel.with_pending_state(|s| {
                s.states.unset(xdg_toplevel::State::Fullscreen);
                s.size = restore.map(|r| r.size);
                s.fullscreen_output = None;
            });
            if let Some(r) = restore {
                self.space.map_element(window.clone(), r.loc, true);
            }
        }
        if toplevel.is_initial_configure_sent() {
            toplevel.send_pending_configure();
        }
        self.needs_redraw = true;
    }

    /// Takes a window out of the layout (not maximized) and puts it at `at`, as a
    /// harness that places windows itself (WLCS) asks. The pointer is re-based at
    /// once, since that caller may check enter/leave before the next frame.
    pub fn place_window(&mut self, window: &Window, at: impl Into<Point<i32, Logical>>) {
        self.set_maximized(window, false);
        self.space.map_element(window.clone(), at, false);
        self.needs_redraw = true;
        self.pointer_rebase();
    }

    pub fn set_maximized(&mut self, window: &Window, on: bool) {
        let Some(toplevel) = window.toplevel() else {
            return;
        };
        let Some(output) = self
            .space
            .outputs_for_element(window)
            .into_iter()
            .next()
            .or_else(|| self.focused_output())
        else {
            return;
        };
        let usable = usable_area(&self.space, &output);
        if on {
            let current = self.space.element_geometry(window);
            meta(window, |m| m.restore = m.restore.or(current));
            toplevel.with_pending_state(|s| {
                s.states.set(xdg_toplevel::State::Maximized);
                s.size = Some(usable.size);
            });
            self.space.map_element(window.clone(), usable.loc, true);
        } else {
            let restore = meta(window, |m| m.restore.take());
            toplevel.with_pending_state(|s| {
                s.states.unset(xdg_toplevel::State::Maximized);
                s.size = restore.map(|r| r.size);
            });
            let loc = restore.map_or_else(
                || policy::centred(window.geometry().size, usable, usable),
                |r| r.loc,
            );
            self.space.map_element(window.clone(), loc, true);
        }
        if toplevel.is_initial_configure_sent() {
            toplevel.send_pending_configure();
        }
        self.needs_redraw = true;
    }

    /// Hides `window` until something activates it again.
    pub fn minimize(&mut self, window: &Window) {
        let geo = self.space.element_geometry(window);
        meta(window, |m| {
            if m.restore.is_none() || m.fullscreen_on.is_none() {
                m.restore = geo;
            }
        });
        self.space.unmap_elem(window);
        self.shell.minimized.push(window.clone());
        // The minimized window goes to the back of the stack, not the front.
        let next = self.shell.focus.send_to_back(window);
        self.focus_window(next.filter(|n| n != window));
    }

    pub fn cycle_focus(&mut self, forward: bool) {
        let next = self.shell.focus.cycle(forward);
        self.focus_window(next);
    }

    /// Re-fits maximized and fullscreen windows after an output or its exclusive
    /// zones changed.
    pub fn rearrange(&mut self, output: &Output) {
        let usable = usable_area(&self.space, output);
        let windows: Vec<Window> = self.space.elements().cloned().collect();
        for w in windows {
            let Some(t) = w.toplevel() else { continue };
            if !self.space.outputs_for_element(&w).contains(output) {
                continue;
            }
            let maximized =
                t.with_pending_state(|s| s.states.contains(xdg_toplevel::State::Maximized));
            let fullscreen = meta(&w, |m| m.fullscreen_on.is_some());
            if maximized && !fullscreen {
                t.with_pending_state(|s| s.size = Some(usable.size));
                self.space.map_element(w.clone(), usable.loc, false);
                t.send_pending_configure();
            }
        }
        self.needs_redraw = true;
    }
}
