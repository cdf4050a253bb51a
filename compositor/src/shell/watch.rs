//! When the space's output bookkeeping must be redone.
//!
//! `Space::refresh` walks every window's surface tree and popups to work out
//! which outputs each overlaps and to send wl_surface.enter/leave. Run before
//! every frame, it took a sixth of the compositor's time with 16 windows of
//! which one changed (perf, `cargo xtask bench compositor`). Its answer only
//! changes when a window or an output is added, removed or moved, or when a
//! commit changes a window's extent or surface tree, so it runs only then. What
//! is under a pointer that did not move changes with the same things (and an
//! input region, which the extent includes), so its hit test runs only then too.

use smithay::desktop::{PopupManager, Space, Window};
use smithay::output::Output;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::utils::{Logical, Point, Rectangle};
use smithay::wayland::compositor::{RectangleKind, SurfaceAttributes, get_children, with_states};
use std::hash::{Hash, Hasher};

/// What a window's place on the outputs, and what a still pointer over it hits,
/// depend on besides its location: its bounding box with popups, its window
/// geometry, its input region, and whether it has subsurfaces (whose own
/// commits and destruction are seen anyway). Also whether it is tiled
/// (maximized or fullscreen, which takes its focus border away): with its
/// buffer, what a commit can change of how the window looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extent {
    bbox: Rectangle<i32, Logical>,
    geometry: Rectangle<i32, Logical>,
    input: u64,
    subsurfaces: bool,
    tiled: bool,
}

impl Extent {
    pub fn of(window: &Window, root: &WlSurface) -> Self {
        Self {
            bbox: window.bbox_with_popups(),
            geometry: window.geometry(),
            input: input_region_key(root),
            subsurfaces: !get_children(root).is_empty()
                || PopupManager::popups_for_surface(root).next().is_some(),
            tiled: crate::render::is_tiled(window),
        }
    }

    /// The window geometry the commit left.
    pub fn geometry(&self) -> Rectangle<i32, Logical> {
        self.geometry
    }

    /// Whether the window had subsurfaces or popups at that commit.
    pub fn has_subsurfaces(&self) -> bool {
        self.subsurfaces
    }
}

/// A fingerprint of `surface`'s current input region (smithay's region type
/// cannot be compared): a client that narrows it changes what the pointer is
/// over without moving anything.
fn input_region_key(surface: &WlSurface) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    with_states(surface, |states| {
        let mut attrs = states.cached_state.get::<SurfaceAttributes>();
        match &attrs.current().input_region {
            None => 0u8.hash(&mut hasher),
            Some(region) => {
                for (kind, rect) in &region.rects {
                    matches!(kind, RectangleKind::Add).hash(&mut hasher);
                    (rect.loc.x, rect.loc.y, rect.size.w, rect.size.h).hash(&mut hasher);
                }
            }
        }
    });
    hasher.finish()
}

/// The outputs and windows the last `Space::refresh` saw.
#[derive(Debug, Default)]
pub struct SpaceWatch {
    /// A commit or a destruction since the last refresh may have changed
    /// what a surface overlaps.
    stale: bool,
    outputs: Vec<(Output, Rectangle<i32, Logical>)>,
    windows: Vec<(Window, Point<i32, Logical>)>,
}

impl SpaceWatch {
    /// Something the space cannot see changed: the next frame refreshes it.
    pub fn invalidate(&mut self) {
        self.stale = true;
    }

    /// A window's root surface committed with `extent`; `before` is what it
    /// had. A commit that kept the extent and has no subsurfaces or popups
    /// (the common case: new contents in the same buffer size) leaves the
    /// space's answer as it was.
    pub fn committed(&mut self, before: Option<Extent>, extent: Extent) {
        if before != Some(extent) || extent.subsurfaces {
            self.stale = true;
        }
    }

    /// Refreshes `space` if anything it depends on changed since the last
    /// time; says whether it did.
    pub fn refresh(&mut self, space: &mut Space<Window>) -> bool {
        if !self.stale && self.unchanged(space) {
            return false;
        }
        space.refresh();
        self.outputs.clear();
        self.outputs.extend(
            space
                .outputs()
                .map(|o| (o.clone(), space.output_geometry(o).unwrap_or_default())),
        );
        self.windows.clear();
        self.windows.extend(
            space
                .elements()
                .map(|w| (w.clone(), space.element_location(w).unwrap_or_default())),
        );
        self.stale = false;
        true
    }

    fn unchanged(&self, space: &Space<Window>) -> bool {
        let mut outputs = space.outputs();
        for (output, geometry) in &self.outputs {
            match outputs.next() {
                Some(o) if o == output && space.output_geometry(o) == Some(*geometry) => {}
                _ => return false,
            }
        }
        if outputs.next().is_some() {
            return false;
        }
        let mut windows = space.elements();
        for (window, location) in &self.windows {
            match windows.next() {
                // A dead window needs no liveness check here: its surface's
                // destruction invalidates the watch.
                Some(w) if w == window && space.element_location(w) == Some(*location) => {}
                _ => return false,
            }
        }
        windows.next().is_none()
    }
}
