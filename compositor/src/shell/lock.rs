//! ext-session-lock: while locked, only lock surfaces are drawn or get input.
//!
//! The lock outlives its locker. If the locking client dies without unlocking, the
//! session stays locked (showing the blank background) until a new locker takes
//! over and unlocks: that is the protocol's intent and what a demanding user
//! expects from a lock screen.

use std::collections::HashMap;

use smithay::output::Output;
use smithay::reexports::wayland_server::Resource;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::wayland::session_lock::{LockSurface, SessionLocker};

#[derive(Debug, Default)]
pub enum LockState {
    #[default]
    Unlocked,
    /// Locked; `pending` is the locker's confirmation, sent once a frame without
    /// any normal surface has been rendered on every output.
    Locked {
        pending: Option<SessionLocker>,
        surfaces: HashMap<String, LockSurface>,
        /// Outputs rendered since locking; `locked` is confirmed once all have been.
        blanked: std::collections::HashSet<String>,
    },
}

impl LockState {
    pub fn is_locked(&self) -> bool {
        matches!(self, LockState::Locked { .. })
    }

    pub fn surface_for(&self, output: &Output) -> Option<&LockSurface> {
        match self {
            LockState::Locked { surfaces, .. } => surfaces
                .get(&output.name())
                .filter(|s| s.wl_surface().is_alive()),
            LockState::Unlocked => None,
        }
    }

    /// Any live lock surface, for keyboard focus.
    pub fn any_surface(&self) -> Option<WlSurface> {
        match self {
            LockState::Locked { surfaces, .. } => surfaces
                .values()
                .map(|s| s.wl_surface())
                .find(|s| s.is_alive())
                .cloned(),
            LockState::Unlocked => None,
        }
    }
}
