//! wlr layer-shell (panels, backgrounds, overlays) and ext-session-lock.

use std::collections::HashMap;

use smithay::desktop::{LayerSurface, PopupKind, layer_map_for_output};
use smithay::output::Output;
use smithay::reexports::wayland_server::protocol::wl_output::WlOutput;
use smithay::utils::SERIAL_COUNTER;
use smithay::wayland::session_lock::{
    LockSurface, SessionLockHandler, SessionLockManagerState, SessionLocker,
};
use smithay::wayland::shell::wlr_layer::{
    Layer, LayerSurface as WlrLayerSurface, WlrLayerShellHandler, WlrLayerShellState,
};
use smithay::wayland::shell::xdg::PopupSurface;
use smithay::{delegate_layer_shell, delegate_session_lock};

use crate::shell::lock::LockState;
use crate::state::Tessera;

impl WlrLayerShellHandler for Tessera {
    fn shell_state(&mut self) -> &mut WlrLayerShellState {
        &mut self.layer_shell_state
    }

    fn new_layer_surface(
        &mut self,
        surface: WlrLayerSurface,
        output: Option<WlOutput>,
        _layer: Layer,
        namespace: String,
    ) {
        let output = output
            .as_ref()
            .and_then(Output::from_resource)
            .or_else(|| self.focused_output());
        let Some(output) = output else {
            // Nowhere to show it: the protocol says to close it.
            surface.send_close();
            return;
        };
        let mut map = layer_map_for_output(&output);
        if let Err(err) = map.map_layer(&LayerSurface::new(surface, namespace)) {
            tracing::warn!(%err, "cannot map layer surface");
        }
    }

    fn new_popup(&mut self, _parent: WlrLayerSurface, popup: PopupSurface) {
        if let Err(err) = self.popups.track_popup(PopupKind::Xdg(popup)) {
            tracing::warn!(%err, "cannot track layer popup");
        }
    }

    fn layer_destroyed(&mut self, surface: WlrLayerSurface) {
        for output in self.outputs() {
            let mut map = layer_map_for_output(&output);
            let found = map
                .layers()
                .find(|l| l.layer_surface() == &surface)
                .cloned();
            if let Some(layer) = found {
                map.unmap_layer(&layer);
                drop(map);
                self.rearrange(&output);
            }
        }
        self.needs_redraw = true;
    }
}

impl SessionLockHandler for Tessera {
    fn lock_state(&mut self) -> &mut SessionLockManagerState {
        &mut self.session_lock_state
    }

    fn lock(&mut self, confirmation: SessionLocker) {
        if self.lock.is_locked() && self.lock.any_surface().is_some() {
            // A live locker holds the lock; dropping the request answers `finished`.
            tracing::info!("lock refused: the session is already locked by a live locker");
            return;
        }
        tracing::info!("session locked");
        // Replacing the state keeps us locked when a new locker takes over from a
        // crashed one.
        self.lock = LockState::Locked {
            pending: Some(confirmation),
            surfaces: HashMap::new(),
            blanked: Default::default(),
        };
        // What the pointer is over changes with the lock, not with the space.
        self.shell.watch.invalidate();
        if let Some(kb) = self.seat.get_keyboard() {
            kb.set_focus(self, None, SERIAL_COUNTER.next_serial());
        }
        // A finger already down stays with its window until it lifts: take
        // them all away so nothing but the lock surface gets input.
        self.touch_cancel();
        self.needs_redraw = true;
    }

    fn unlock(&mut self) {
        tracing::info!("session unlocked");
        self.lock = LockState::Unlocked;
        self.shell.watch.invalidate();
        let front = self.shell.focus.front().cloned();
        self.focus_window(front);
        self.needs_redraw = true;
    }

    fn new_surface(&mut self, surface: LockSurface, wl_output: WlOutput) {
        let Some(output) = Output::from_resource(&wl_output) else {
            return;
        };
        let Some(geo) = self.space.output_geometry(&output) else {
            return;
        };
        surface.with_pending_state(|s| {
            s.size = Some((geo.size.w as u32, geo.size.h as u32).into());
        });
        surface.send_configure();
        let focus = surface.wl_surface().clone();
        if let LockState::Locked { surfaces, .. } = &mut self.lock {
            surfaces.insert(output.name(), surface);
        }
        self.shell.watch.invalidate();
        if let Some(kb) = self.seat.get_keyboard() {
            kb.set_focus(self, Some(focus), SERIAL_COUNTER.next_serial());
        }
        self.needs_redraw = true;
    }
}

delegate_layer_shell!(Tessera);
delegate_session_lock!(Tessera);
