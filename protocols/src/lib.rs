//! The table of Wayland globals Tessera advertises, their versions and their
//! privilege classes, and the sandbox policy that decides who may bind them.
//!
//! A client that connects through a `wp_security_context_v1` listener (Flatpak
//! makes one per app) is *sandboxed*. A global in a privileged class lets a client
//! see or drive the whole session (capture the screen, inject input, lock it, draw
//! above other clients), so sandboxed clients do not see it unless a policy rule
//! for their sandbox engine and app id allows the class. This table is the one place
//! that decides which class a global is in; the compositor consults it in its global
//! filters and the tests assert that every advertised global is in it.

use serde::{Deserialize, Serialize};

/// What a global lets a client do, as far as the sandbox policy is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrivilegeClass {
    /// Ordinary client globals; every client sees them.
    Public,
    /// Reading other clients' pixels: screencopy, image-copy-capture.
    ScreenCapture,
    /// Reading and setting the clipboard without focus.
    DataControl,
    /// Injecting keyboard and pointer events.
    VirtualInput,
    /// Acting as the input method for other clients.
    InputMethod,
    /// Locking the session and drawing the lock screen.
    SessionLock,
    /// Panels, backgrounds and overlays above or below every window.
    LayerShell,
    /// Listing and driving other clients' windows.
    ForeignToplevel,
    /// Changing output modes, positions and scales.
    OutputManagement,
    /// Changing gamma ramps.
    Gamma,
    /// Creating security contexts. Never granted to a sandboxed client: contexts do
    /// not nest (the protocol's `nested` error).
    SecurityContext,
    /// A global this table does not know. Never granted to a sandboxed client, so a
    /// new global must be classified before a sandbox can see it.
    Unclassified,
}

impl PrivilegeClass {
    /// Classes a policy rule may grant to a sandboxed client.
    pub const GRANTABLE: &[PrivilegeClass] = &[
        PrivilegeClass::ScreenCapture,
        PrivilegeClass::DataControl,
        PrivilegeClass::VirtualInput,
        PrivilegeClass::InputMethod,
        PrivilegeClass::SessionLock,
        PrivilegeClass::LayerShell,
        PrivilegeClass::ForeignToplevel,
        PrivilegeClass::OutputManagement,
        PrivilegeClass::Gamma,
    ];

    /// The name used in `compositor.toml` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::ScreenCapture => "screen-capture",
            Self::DataControl => "data-control",
            Self::VirtualInput => "virtual-input",
            Self::InputMethod => "input-method",
            Self::SessionLock => "session-lock",
            Self::LayerShell => "layer-shell",
            Self::ForeignToplevel => "foreign-toplevel",
            Self::OutputManagement => "output-management",
            Self::Gamma => "gamma",
            Self::SecurityContext => "security-context",
            Self::Unclassified => "unclassified",
        }
    }

    pub fn is_grantable(self) -> bool {
        Self::GRANTABLE.contains(&self)
    }
}

/// How a client connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientClass {
    /// Connected to the compositor's own socket.
    Unrestricted,
    /// Connected through a security-context listener.
    Sandboxed(SandboxIdentity),
}

/// What the sandbox engine told the compositor about a sandboxed client. Every field
/// is optional in the protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SandboxIdentity {
    /// e.g. `org.flatpak`.
    pub engine: Option<String>,
    /// e.g. `org.gnome.Snapshot`.
    pub app_id: Option<String>,
    /// The sandbox engine's id for this running instance.
    pub instance_id: Option<String>,
}

/// One global Tessera advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GlobalSpec {
    pub interface: &'static str,
    /// The version Tessera advertises.
    pub version: u32,
    pub class: PrivilegeClass,
}

const fn global(interface: &'static str, version: u32, class: PrivilegeClass) -> GlobalSpec {
    GlobalSpec {
        interface,
        version,
        class,
    }
}

use PrivilegeClass as P;

/// Every global Tessera advertises, with its version and class.
pub const GLOBALS: &[GlobalSpec] = &[
    global("wl_compositor", 6, P::Public),
    global("wl_subcompositor", 1, P::Public),
    global("wl_shm", 2, P::Public),
    global("wl_seat", 9, P::Public),
    global("wl_output", 4, P::Public),
    global("wl_data_device_manager", 3, P::Public),
    global("xdg_wm_base", 6, P::Public),
    global("zxdg_output_manager_v1", 3, P::Public),
    global("zxdg_decoration_manager_v1", 1, P::Public),
    global("xdg_activation_v1", 1, P::Public),
    global("wp_single_pixel_buffer_manager_v1", 1, P::Public),
    global("zwp_linux_dmabuf_v1", 5, P::Public),
    global("wp_viewporter", 1, P::Public),
    global("wp_fractional_scale_manager_v1", 1, P::Public),
    global("wp_presentation", 2, P::Public),
    global("wp_cursor_shape_manager_v1", 2, P::Public),
    global("zwp_primary_selection_device_manager_v1", 1, P::Public),
    global("zwp_idle_inhibit_manager_v1", 1, P::Public),
    global("ext_idle_notifier_v1", 2, P::Public),
    global("zwlr_screencopy_manager_v1", 3, P::ScreenCapture),
    global("ext_session_lock_manager_v1", 1, P::SessionLock),
    global("zwlr_layer_shell_v1", 4, P::LayerShell),
    global("wp_security_context_manager_v1", 1, P::SecurityContext),
];

/// Globals Tessera does not offer yet, classified already so that offering one
/// later cannot silently hand it to sandboxed clients.
pub const NOT_YET_OFFERED: &[(&str, PrivilegeClass)] = &[
    ("wp_linux_drm_syncobj_manager_v1", P::Public),
    ("ext_image_copy_capture_manager_v1", P::ScreenCapture),
    (
        "ext_output_image_capture_source_manager_v1",
        P::ScreenCapture,
    ),
    ("zwlr_data_control_manager_v1", P::DataControl),
    ("ext_data_control_manager_v1", P::DataControl),
    ("zwp_virtual_keyboard_manager_v1", P::VirtualInput),
    ("zwlr_virtual_pointer_manager_v1", P::VirtualInput),
    ("zwp_input_method_manager_v2", P::InputMethod),
    ("zwlr_output_manager_v1", P::OutputManagement),
    ("ext_foreign_toplevel_list_v1", P::ForeignToplevel),
    ("zwlr_foreign_toplevel_manager_v1", P::ForeignToplevel),
    ("zwlr_gamma_control_manager_v1", P::Gamma),
];

/// The class of `interface`; [`PrivilegeClass::Unclassified`] for one the table
/// does not know.
pub fn class_of(interface: &str) -> PrivilegeClass {
    GLOBALS
        .iter()
        .map(|g| (g.interface, g.class))
        .chain(NOT_YET_OFFERED.iter().copied())
        .find(|(name, _)| *name == interface)
        .map_or(PrivilegeClass::Unclassified, |(_, class)| class)
}

/// A policy rule: for sandboxed clients that match `engine` and `app_id` (a missing
/// field matches anything), grant the classes in `allow` and withhold those in
/// `deny`. Rules apply in order, so a later rule overrides an earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxRule {
    pub engine: Option<String>,
    pub app_id: Option<String>,
    pub allow: Vec<PrivilegeClass>,
    pub deny: Vec<PrivilegeClass>,
}

impl SandboxRule {
    fn matches(&self, id: &SandboxIdentity) -> bool {
        let field = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| Some(w) == have.as_ref())
        };
        field(&self.engine, &id.engine) && field(&self.app_id, &id.app_id)
    }
}

/// Whether a sandboxed client may use a privilege class, and which rule said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Public class, or an unrestricted client.
    Open,
    /// Granted by the rule at this index.
    Allowed(usize),
    /// The default for privileged classes.
    DeniedByDefault,
    /// Withheld by the rule at this index.
    Denied(usize),
}

impl Verdict {
    pub fn allowed(self) -> bool {
        matches!(self, Self::Open | Self::Allowed(_))
    }
}

/// The verdict for a client of class `client` on a global of class `class`.
pub fn verdict(client: &ClientClass, class: PrivilegeClass, rules: &[SandboxRule]) -> Verdict {
    let ClientClass::Sandboxed(id) = client else {
        return Verdict::Open;
    };
    if class == PrivilegeClass::Public {
        return Verdict::Open;
    }
    if !class.is_grantable() {
        return Verdict::DeniedByDefault;
    }
    let mut verdict = Verdict::DeniedByDefault;
    for (i, rule) in rules.iter().enumerate().filter(|(_, r)| r.matches(id)) {
        if rule.deny.contains(&class) {
            verdict = Verdict::Denied(i);
        } else if rule.allow.contains(&class) {
            verdict = Verdict::Allowed(i);
        }
    }
    verdict
}

/// Whether a client of class `client` may see the global `interface`.
pub fn may_bind(client: &ClientClass, interface: &str, rules: &[SandboxRule]) -> bool {
    verdict(client, class_of(interface), rules).allowed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandboxed(engine: &str, app: &str) -> ClientClass {
        ClientClass::Sandboxed(SandboxIdentity {
            engine: Some(engine.into()),
            app_id: Some(app.into()),
            instance_id: None,
        })
    }

    fn flatpak(app: &str) -> ClientClass {
        sandboxed("org.flatpak", app)
    }

    fn rule(engine: Option<&str>, app: Option<&str>, allow: &[P], deny: &[P]) -> SandboxRule {
        SandboxRule {
            engine: engine.map(Into::into),
            app_id: app.map(Into::into),
            allow: allow.to_vec(),
            deny: deny.to_vec(),
        }
    }

    #[test]
    fn sandboxed_clients_see_public_globals_only() {
        let c = flatpak("org.example.App");
        assert!(may_bind(&c, "wl_compositor", &[]));
        assert!(may_bind(&c, "wp_single_pixel_buffer_manager_v1", &[]));
        for g in GLOBALS.iter().filter(|g| g.class != P::Public) {
            assert!(!may_bind(&c, g.interface, &[]), "{}", g.interface);
            assert!(may_bind(&ClientClass::Unrestricted, g.interface, &[]));
        }
    }

    #[test]
    fn unknown_globals_are_unclassified_and_never_granted() {
        assert_eq!(class_of("x_new_thing_v1"), P::Unclassified);
        let everything = rule(None, None, P::GRANTABLE, &[]);
        assert!(!may_bind(&flatpak("a"), "x_new_thing_v1", &[everything]));
        assert!(may_bind(&ClientClass::Unrestricted, "x_new_thing_v1", &[]));
    }

    #[test]
    fn security_contexts_do_not_nest_whatever_the_rules_say() {
        let r = rule(None, None, &[P::SecurityContext], &[]);
        assert!(!may_bind(
            &flatpak("a"),
            "wp_security_context_manager_v1",
            &[r]
        ));
    }

    #[test]
    fn rules_match_engine_and_app_id() {
        let rules = [rule(
            Some("org.flatpak"),
            Some("org.gnome.Snapshot"),
            &[P::ScreenCapture],
            &[],
        )];
        let screencopy = "zwlr_screencopy_manager_v1";
        assert!(may_bind(&flatpak("org.gnome.Snapshot"), screencopy, &rules));
        assert!(!may_bind(&flatpak("org.evil.App"), screencopy, &rules));
        let snap = sandboxed("io.snapcraft", "org.gnome.Snapshot");
        assert!(!may_bind(&snap, screencopy, &rules));
        // Only the class named.
        assert!(!may_bind(
            &flatpak("org.gnome.Snapshot"),
            "zwlr_layer_shell_v1",
            &rules
        ));
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let rules = [
            rule(Some("org.flatpak"), None, &[P::LayerShell], &[]),
            rule(None, Some("org.evil.App"), &[], &[P::LayerShell]),
        ];
        let layer = "zwlr_layer_shell_v1";
        assert!(may_bind(&flatpak("org.panel"), layer, &rules));
        assert_eq!(
            verdict(&flatpak("org.evil.App"), P::LayerShell, &rules),
            Verdict::Denied(1)
        );
        assert_eq!(
            verdict(&flatpak("org.panel"), P::LayerShell, &rules),
            Verdict::Allowed(0)
        );
        assert_eq!(
            verdict(&flatpak("org.panel"), P::Gamma, &rules),
            Verdict::DeniedByDefault
        );
    }

    #[test]
    fn a_context_without_identity_only_matches_wildcard_rules() {
        let anon = ClientClass::Sandboxed(SandboxIdentity::default());
        let named = [rule(Some("org.flatpak"), None, &[P::Gamma], &[])];
        let wildcard = [rule(None, None, &[P::Gamma], &[])];
        assert!(!verdict(&anon, P::Gamma, &named).allowed());
        assert!(verdict(&anon, P::Gamma, &wildcard).allowed());
    }

    #[test]
    fn interfaces_are_listed_once() {
        let mut names: Vec<_> = GLOBALS
            .iter()
            .map(|g| g.interface)
            .chain(NOT_YET_OFFERED.iter().map(|(n, _)| *n))
            .collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn class_names_round_trip_through_serde() {
        for class in PrivilegeClass::GRANTABLE {
            let json = format!("\"{}\"", class.name());
            let back: PrivilegeClass = serde_json_like(&json);
            assert_eq!(back, *class);
        }
    }

    /// A string literal through serde's own deserializer for `&str`, without pulling
    /// in a format crate.
    fn serde_json_like(quoted: &str) -> PrivilegeClass {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, StrDeserializer};
        let inner = quoted.trim_matches('"');
        let de: StrDeserializer<'_, Error> = inner.into_deserializer();
        PrivilegeClass::deserialize(de).unwrap_or(PrivilegeClass::Unclassified)
    }
}
