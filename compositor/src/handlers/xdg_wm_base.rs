//! smithay's `delegate_xdg_shell!`, except for xdg_wm_base: `get_xdg_surface` on
//! a wl_surface that already has a role, or a buffer, is a protocol error the
//! spec names (`role`, `invalid_surface_state`); smithay accepts both and only
//! notices a role clash at `get_toplevel`. WLCS tests both.

use smithay::backend::renderer::utils::RendererSurfaceStateUserData;
use smithay::reexports::wayland_protocols::xdg::shell::server::{
    xdg_popup::XdgPopup, xdg_positioner::XdgPositioner, xdg_surface::XdgSurface,
    xdg_toplevel::XdgToplevel, xdg_wm_base,
};
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::{
    Client, DataInit, Dispatch, DisplayHandle, Resource, delegate_dispatch,
    delegate_global_dispatch,
};
use smithay::wayland::compositor::{SurfaceAttributes, get_role, with_states};
use smithay::wayland::shell::xdg::{
    XdgPositionerUserData, XdgShellState, XdgShellSurfaceUserData, XdgSurfaceUserData,
    XdgWmBaseUserData,
};

use crate::state::Tessera;

delegate_global_dispatch!(Tessera: [xdg_wm_base::XdgWmBase: ()] => XdgShellState);
delegate_dispatch!(Tessera: [XdgPositioner: XdgPositionerUserData] => XdgShellState);
delegate_dispatch!(Tessera: [XdgPopup: XdgShellSurfaceUserData] => XdgShellState);
delegate_dispatch!(Tessera: [XdgSurface: XdgSurfaceUserData] => XdgShellState);
delegate_dispatch!(Tessera: [XdgToplevel: XdgShellSurfaceUserData] => XdgShellState);

/// Whether the client attached (or committed) a buffer to `surface`.
fn has_buffer(surface: &WlSurface) -> bool {
    with_states(surface, |states| {
        let mut attrs = states.cached_state.get::<SurfaceAttributes>();
        let attached = attrs.pending().buffer.is_some() || attrs.current().buffer.is_some();
        let committed = states
            .data_map
            .get::<RendererSurfaceStateUserData>()
            .and_then(|s| s.lock().ok().map(|s| s.buffer().is_some()))
            .unwrap_or(false);
        attached || committed
    })
}

impl Dispatch<xdg_wm_base::XdgWmBase, XdgWmBaseUserData> for Tessera {
    fn request(
        state: &mut Self,
        client: &Client,
        wm_base: &xdg_wm_base::XdgWmBase,
        request: xdg_wm_base::Request,
        data: &XdgWmBaseUserData,
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        if let xdg_wm_base::Request::GetXdgSurface { surface, .. } = &request {
            let error = if let Some(role) = get_role(surface) {
                Some((
                    xdg_wm_base::Error::Role,
                    format!(
                        "wl_surface@{} already has the role {role}",
                        surface.id().protocol_id()
                    ),
                ))
            } else if has_buffer(surface) {
                Some((
                    xdg_wm_base::Error::InvalidSurfaceState,
                    format!(
                        "wl_surface@{} has a buffer before it has an xdg_surface",
                        surface.id().protocol_id()
                    ),
                ))
            } else {
                None
            };
            if let Some((code, message)) = error {
                // The client is dead after this, so the new xdg_surface needs no data.
                wm_base.post_error(code, message);
                return;
            }
        }
        <XdgShellState as Dispatch<xdg_wm_base::XdgWmBase, XdgWmBaseUserData, Self>>::request(
            state, client, wm_base, request, data, dh, data_init,
        );
    }

    fn destroyed(
        state: &mut Self,
        client: smithay::reexports::wayland_server::backend::ClientId,
        wm_base: &xdg_wm_base::XdgWmBase,
        data: &XdgWmBaseUserData,
    ) {
        <XdgShellState as Dispatch<xdg_wm_base::XdgWmBase, XdgWmBaseUserData, Self>>::destroyed(
            state, client, wm_base, data,
        );
    }
}
