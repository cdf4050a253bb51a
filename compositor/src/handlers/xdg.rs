//! xdg-shell, xdg-decoration and xdg-activation.

use smithay::desktop::{PopupKind, find_popup_root_surface, get_popup_toplevel_coords};
use smithay::input::pointer::Focus;
use smithay::reexports::wayland_protocols::xdg::decoration::zv1::server::zxdg_toplevel_decoration_v1::Mode as DecorationMode;
use smithay::reexports::wayland_protocols::xdg::shell::server::xdg_toplevel;
use smithay::reexports::wayland_server::protocol::{wl_output::WlOutput, wl_seat, wl_surface::WlSurface};
use smithay::utils::Serial;
use smithay::wayland::shell::xdg::decoration::XdgDecorationHandler;
use smithay::wayland::shell::xdg::{
    PopupSurface, PositionerState, ToplevelSurface, XdgShellHandler, XdgShellState,
};
use smithay::wayland::xdg_activation::{
    XdgActivationHandler, XdgActivationState, XdgActivationToken, XdgActivationTokenData,
};
use smithay::output::Output;
use smithay::{delegate_xdg_activation, delegate_xdg_decoration};

use crate::state::Tessera;

impl XdgShellHandler for Tessera {
    fn xdg_shell_state(&mut self) -> &mut XdgShellState {
        &mut self.xdg_shell_state
    }

    fn popup_destroyed(&mut self, _surface: PopupSurface) {
        // The popup's role went with no commit of its window, whose kept
        // elements draw it (`render::kept`).
        self.kept.get_mut().clear();
    }

    fn new_toplevel(&mut self, surface: ToplevelSurface) {
        Tessera::new_toplevel(self, surface);
    }

    fn parent_changed(&mut self, surface: ToplevelSurface) {
        Tessera::parent_changed(self, &surface);
    }

    fn toplevel_destroyed(&mut self, surface: ToplevelSurface) {
        Tessera::toplevel_destroyed(self, &surface);
    }

    fn new_popup(&mut self, surface: PopupSurface, positioner: PositionerState) {
        surface.with_pending_state(|s| s.geometry = positioner.get_geometry());
        self.unconstrain_popup(&surface);
        if let Err(err) = self.popups.track_popup(PopupKind::Xdg(surface)) {
            tracing::warn!(%err, "cannot track popup");
        }
    }

    fn reposition_request(
        &mut self,
        surface: PopupSurface,
        positioner: PositionerState,
        token: u32,
    ) {
        surface.with_pending_state(|s| {
            s.geometry = positioner.get_geometry();
            s.positioner = positioner;
        });
        self.unconstrain_popup(&surface);
        surface.send_repositioned(token);
        self.needs_redraw = true;
    }

    fn grab(&mut self, surface: PopupSurface, _seat: wl_seat::WlSeat, serial: Serial) {
        let kind = PopupKind::Xdg(surface);
        let Ok(root) = find_popup_root_surface(&kind) else {
            return;
        };
        let seat = self.seat.clone();
        match self.popups.grab_popup(root, kind, &seat, serial) {
            Ok(mut grab) => {
                if let Some(kb) = seat.get_keyboard() {
                    if kb.is_grabbed()
                        && !(kb.has_grab(serial)
                            || kb.has_grab(grab.previous_serial().unwrap_or(serial)))
                    {
                        grab.ungrab(smithay::desktop::PopupUngrabStrategy::All);
                        return;
                    }
                    kb.set_focus(self, grab.current_grab(), serial);
                    kb.set_grab(
                        self,
                        smithay::desktop::PopupKeyboardGrab::new(&grab),
                        serial,
                    );
                }
                if let Some(ptr) = seat.get_pointer() {
                    if ptr.is_grabbed()
                        && !(ptr.has_grab(serial)
                            || ptr
                                .has_grab(grab.previous_serial().unwrap_or_else(|| grab.serial())))
                    {
                        grab.ungrab(smithay::desktop::PopupUngrabStrategy::All);
                        return;
                    }
                    ptr.set_grab(
                        self,
                        smithay::desktop::PopupPointerGrab::new(&grab),
                        serial,
                        Focus::Keep,
                    );
                }
            }
            Err(err) => tracing::debug!(?err, "popup grab refused"),
        }
    }

    fn maximize_request(&mut self, surface: ToplevelSurface) {
        match self
            .shell
            .window_for_surface(&self.space, surface.wl_surface())
        {
            Some(w) => self.set_maximized(&w, true),
            // Not mapped yet: the initial configure honours it (desktop policy),
            // or, when that went out already, a new configure does.
            None => {
                surface.with_pending_state(|s| s.states.set(xdg_toplevel::State::Maximized));
                if surface.is_initial_configure_sent() {
                    if let Some(output) = self.focused_output() {
                        let usable = crate::shell::usable_area(&self.space, &output);
                        surface.with_pending_state(|s| s.size = Some(usable.size));
                    }
                    surface.send_pending_configure();
                }
            }
        }
    }

    fn unmaximize_request(&mut self, surface: ToplevelSurface) {
        if let Some(w) = self
            .shell
            .window_for_surface(&self.space, surface.wl_surface())
        {
            self.set_maximized(&w, false);
        }
    }

    fn fullscreen_request(&mut self, surface: ToplevelSurface, output: Option<WlOutput>) {
        let output = output.as_ref().and_then(Output::from_resource);
        match self
            .shell
            .window_for_surface(&self.space, surface.wl_surface())
        {
            Some(w) => self.set_fullscreen(&w, true, output),
            None => {
                // Not mapped yet: fullscreen from the first frame.
                let output = output.or_else(|| self.focused_output());
                if let Some(geo) = output.as_ref().and_then(|o| self.space.output_geometry(o)) {
                    surface.with_pending_state(|s| {
                        s.states.set(xdg_toplevel::State::Fullscreen);
                        s.size = Some(geo.size);
                    });
                }
            }
        }
    }

    fn unfullscreen_request(&mut self, surface: ToplevelSurface) {
        if let Some(w) = self
            .shell
            .window_for_surface(&self.space, surface.wl_surface())
        {
            self.set_fullscreen(&w, false, None);
        }
    }

    fn minimize_request(&mut self, surface: ToplevelSurface) {
        if let Some(w) = self
            .shell
            .window_for_surface(&self.space, surface.wl_surface())
        {
            self.minimize(&w);
        }
    }
}

trait SendIfNeeded {
    fn send_configure_if_needed(&self);
}

impl SendIfNeeded for ToplevelSurface {
    fn send_configure_if_needed(&self) {
        if self.is_initial_configure_sent() {
            self.send_pending_configure();
        }
    }
}

impl Tessera {
    /// Keeps a popup inside the output its parent is on, as the positioner's
    /// constraint adjustments allow.
    fn unconstrain_popup(&self, popup: &PopupSurface) {
        let kind = PopupKind::Xdg(popup.clone());
        let Ok(root) = find_popup_root_surface(&kind) else {
            return;
        };
        let Some(window) = self.shell.window_for_surface(&self.space, &root) else {
            return;
        };
        let Some(window_loc) = self.space.element_location(&window) else {
            return;
        };
        let Some(output) = self.space.outputs_for_element(&window).into_iter().next() else {
            return;
        };
        let Some(mut target) = self.space.output_geometry(&output) else {
            return;
        };
        // Into the parent's coordinate space.
        target.loc -= get_popup_toplevel_coords(&kind);
        target.loc -= window_loc;
        target.loc += window.geometry().loc;
        popup.with_pending_state(|s| {
            s.geometry = s.positioner.get_unconstrained_geometry(target);
        });
    }
}

impl XdgDecorationHandler for Tessera {
    fn new_decoration(&mut self, toplevel: ToplevelSurface) {
        // Server-side: the appliance draws no client chrome.
        toplevel.with_pending_state(|s| s.decoration_mode = Some(DecorationMode::ServerSide));
        toplevel.send_configure_if_needed();
    }

    fn request_mode(&mut self, toplevel: ToplevelSurface, mode: DecorationMode) {
        toplevel.with_pending_state(|s| s.decoration_mode = Some(mode));
        toplevel.send_configure_if_needed();
    }

    fn unset_mode(&mut self, toplevel: ToplevelSurface) {
        toplevel.with_pending_state(|s| s.decoration_mode = Some(DecorationMode::ServerSide));
        toplevel.send_configure_if_needed();
    }
}

impl XdgActivationHandler for Tessera {
    fn activation_state(&mut self) -> &mut XdgActivationState {
        &mut self.xdg_activation_state
    }

    fn request_activation(
        &mut self,
        token: XdgActivationToken,
        token_data: XdgActivationTokenData,
        surface: WlSurface,
    ) {
        // Tokens are honoured for ten seconds; older ones cannot steal focus.
        if token_data.timestamp.elapsed().as_secs() < 10
            && let Some(w) = self.shell.window_for_surface(&self.space, &surface)
        {
            self.focus_window(Some(w));
        }
        self.xdg_activation_state.remove_token(&token);
    }
}

delegate_xdg_decoration!(Tessera);
delegate_xdg_activation!(Tessera);
