//! The seat and what hangs off it: selections, cursor shape, idle and outputs.

use smithay::input::pointer::CursorImageStatus;
use smithay::input::{Seat, SeatHandler, SeatState};
use smithay::reexports::wayland_server::Resource;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::wayland::idle_inhibit::IdleInhibitHandler;
use smithay::wayland::idle_notify::{IdleNotifierHandler, IdleNotifierState};
use smithay::wayland::output::OutputHandler;
use smithay::wayland::selection::SelectionHandler;
use smithay::wayland::selection::data_device::{
    ClientDndGrabHandler, DataDeviceHandler, DataDeviceState, ServerDndGrabHandler,
    set_data_device_focus,
};
use smithay::wayland::selection::primary_selection::{
    PrimarySelectionHandler, PrimarySelectionState, set_primary_focus,
};
use smithay::wayland::tablet_manager::TabletSeatHandler;
use smithay::{
    delegate_cursor_shape, delegate_data_device, delegate_idle_inhibit, delegate_idle_notify,
    delegate_output, delegate_primary_selection, delegate_seat,
};

use crate::state::Tessera;

impl SeatHandler for Tessera {
    type KeyboardFocus = WlSurface;
    type PointerFocus = WlSurface;
    type TouchFocus = WlSurface;

    fn seat_state(&mut self) -> &mut SeatState<Self> {
        &mut self.seat_state
    }

    fn focus_changed(&mut self, seat: &Seat<Self>, focused: Option<&WlSurface>) {
        let client = focused.and_then(|s| self.display_handle.get_client(s.id()).ok());
        set_data_device_focus(&self.display_handle, seat, client.clone());
        set_primary_focus(&self.display_handle, seat, client);
    }

    fn cursor_image(&mut self, _seat: &Seat<Self>, image: CursorImageStatus) {
        self.cursor_status = image;
        self.needs_redraw = true;
    }
}

impl SelectionHandler for Tessera {
    type SelectionUserData = ();
}

impl DataDeviceHandler for Tessera {
    fn data_device_state(&self) -> &DataDeviceState {
        &self.data_device_state
    }
}

impl ClientDndGrabHandler for Tessera {}
impl ServerDndGrabHandler for Tessera {}

impl PrimarySelectionHandler for Tessera {
    fn primary_selection_state(&self) -> &PrimarySelectionState {
        &self.primary_selection_state
    }
}

impl TabletSeatHandler for Tessera {}

impl OutputHandler for Tessera {}

impl IdleNotifierHandler for Tessera {
    fn idle_notifier_state(&mut self) -> &mut IdleNotifierState<Self> {
        &mut self.idle_notifier_state
    }
}

impl IdleInhibitHandler for Tessera {
    fn inhibit(&mut self, surface: WlSurface) {
        self.idle_inhibitors.push(surface);
        self.idle_notifier_state.set_is_inhibited(true);
    }

    fn uninhibit(&mut self, surface: WlSurface) {
        self.idle_inhibitors.retain(|s| *s != surface);
        self.idle_inhibitors.retain(|s| s.is_alive());
        self.idle_notifier_state
            .set_is_inhibited(!self.idle_inhibitors.is_empty());
    }
}

delegate_seat!(Tessera);
delegate_data_device!(Tessera);
delegate_primary_selection!(Tessera);
delegate_cursor_shape!(Tessera);
delegate_output!(Tessera);
delegate_idle_notify!(Tessera);
delegate_idle_inhibit!(Tessera);
