//! The table of Wayland globals and their privilege classes.
//!
//! A client that connects through a `wp_security_context_v1` (Flatpak sets one) is
//! *sandboxed*. Globals in the [`Privilege::Privileged`] class let a client see or
//! drive the whole session (capture the screen, inject input, lock it, draw above
//! other clients), so they are hidden from sandboxed clients unless a configured
//! exception names the sandbox engine and app id. This table is the one place that
//! decides which class a global is in; the compositor consults it in its global
//! filter and the tests assert against it.

use serde::Serialize;

/// Who may bind a global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Privilege {
    /// Every client, sandboxed or not.
    Public,
    /// Only clients that did not connect through a security context, unless an
    /// exception allows it.
    Privileged,
}

/// How a client connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientClass {
    /// Connected to the compositor's own socket.
    Unrestricted,
    /// Connected through a security-context listener.
    Sandboxed {
        engine: Option<String>,
        app_id: Option<String>,
    },
}

/// One global, by its interface name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GlobalSpec {
    pub interface: &'static str,
    pub privilege: Privilege,
}

const fn public(interface: &'static str) -> GlobalSpec {
    GlobalSpec {
        interface,
        privilege: Privilege::Public,
    }
}

const fn privileged(interface: &'static str) -> GlobalSpec {
    GlobalSpec {
        interface,
        privilege: Privilege::Privileged,
    }
}

/// The privilege class of every global the compositor may offer.
pub const GLOBALS: &[GlobalSpec] = &[
    public("wl_compositor"),
    public("wl_subcompositor"),
    public("wl_shm"),
    public("wl_seat"),
    public("wl_output"),
    public("wl_data_device_manager"),
    public("xdg_wm_base"),
    public("zxdg_output_manager_v1"),
    public("zxdg_decoration_manager_v1"),
    public("xdg_activation_v1"),
    public("zwp_linux_dmabuf_v1"),
    public("wp_single_pixel_buffer_manager_v1"),
    public("wp_viewporter"),
    public("wp_fractional_scale_manager_v1"),
    public("wp_presentation"),
    public("wp_cursor_shape_manager_v1"),
    public("zwp_primary_selection_device_manager_v1"),
    public("zwp_idle_inhibit_manager_v1"),
    public("ext_idle_notifier_v1"),
    public("wp_linux_drm_syncobj_manager_v1"),
    privileged("zwlr_screencopy_manager_v1"),
    privileged("ext_image_copy_capture_manager_v1"),
    privileged("zwlr_data_control_manager_v1"),
    privileged("ext_data_control_manager_v1"),
    privileged("zwp_virtual_keyboard_manager_v1"),
    privileged("zwlr_virtual_pointer_manager_v1"),
    privileged("zwp_input_method_manager_v2"),
    privileged("ext_session_lock_manager_v1"),
    privileged("zwlr_layer_shell_v1"),
    privileged("zwlr_output_manager_v1"),
    privileged("ext_foreign_toplevel_list_v1"),
    privileged("zwlr_foreign_toplevel_manager_v1"),
    privileged("zwlr_gamma_control_manager_v1"),
    privileged("wp_security_context_manager_v1"),
];

/// The class of `interface`. Globals missing from the table are treated as
/// privileged: a new global must be classified before a sandbox can see it.
pub fn privilege_of(interface: &str) -> Privilege {
    GLOBALS
        .iter()
        .find(|g| g.interface == interface)
        .map_or(Privilege::Privileged, |g| g.privilege)
}

/// An exception that lets matching sandboxed clients bind a privileged global.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// Sandbox engine, e.g. `org.flatpak`; `None` matches any.
    pub engine: Option<String>,
    /// App id, e.g. `org.gnome.Snapshot`; `None` matches any.
    pub app_id: Option<String>,
    pub interface: String,
}

/// Whether a client of class `client` may see `interface`.
pub fn may_bind(client: &ClientClass, interface: &str, exceptions: &[Exception]) -> bool {
    match client {
        ClientClass::Unrestricted => true,
        ClientClass::Sandboxed { engine, app_id } => {
            privilege_of(interface) == Privilege::Public
                || exceptions.iter().any(|e| {
                    e.interface == interface
                        && e.engine.as_ref().is_none_or(|x| Some(x) == engine.as_ref())
                        && e.app_id.as_ref().is_none_or(|x| Some(x) == app_id.as_ref())
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatpak(app: &str) -> ClientClass {
        ClientClass::Sandboxed {
            engine: Some("org.flatpak".into()),
            app_id: Some(app.into()),
        }
    }

    #[test]
    fn sandboxed_clients_see_public_globals_only() {
        let c = flatpak("org.example.App");
        assert!(may_bind(&c, "wl_compositor", &[]));
        assert!(may_bind(&c, "wp_single_pixel_buffer_manager_v1", &[]));
        assert!(!may_bind(&c, "zwlr_screencopy_manager_v1", &[]));
        assert!(!may_bind(&c, "wp_security_context_manager_v1", &[]));
        assert!(!may_bind(&c, "zwlr_layer_shell_v1", &[]));
    }

    #[test]
    fn unknown_globals_are_privileged() {
        assert_eq!(privilege_of("x_new_thing_v1"), Privilege::Privileged);
        assert!(!may_bind(&flatpak("a"), "x_new_thing_v1", &[]));
        assert!(may_bind(&ClientClass::Unrestricted, "x_new_thing_v1", &[]));
    }

    #[test]
    fn exceptions_match_engine_and_app_id() {
        let ex = [Exception {
            engine: Some("org.flatpak".into()),
            app_id: Some("org.gnome.Snapshot".into()),
            interface: "zwlr_screencopy_manager_v1".into(),
        }];
        assert!(may_bind(
            &flatpak("org.gnome.Snapshot"),
            "zwlr_screencopy_manager_v1",
            &ex
        ));
        assert!(!may_bind(
            &flatpak("org.evil.App"),
            "zwlr_screencopy_manager_v1",
            &ex
        ));
        let snap = ClientClass::Sandboxed {
            engine: Some("io.snapcraft".into()),
            app_id: Some("org.gnome.Snapshot".into()),
        };
        assert!(!may_bind(&snap, "zwlr_screencopy_manager_v1", &ex));
        assert!(!may_bind(
            &flatpak("org.gnome.Snapshot"),
            "zwlr_data_control_manager_v1",
            &ex
        ));
    }

    #[test]
    fn interfaces_are_listed_once() {
        let mut names: Vec<_> = GLOBALS.iter().map(|g| g.interface).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
