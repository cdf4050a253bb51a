//! The schema of `compositor.toml`.
//!
//! Every table denies unknown keys and every value that has a syntax of its own
//! (key combos, actions, modes) is parsed during deserialisation, so a mistake is
//! reported by [`crate::load`] with the file, line and dotted key.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use tessera_protocols::PrivilegeClass;

mod input;
pub use input::*;

/// The whole of `compositor.toml`. Every field has a default, so an empty file is valid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompositorConfig {
    /// Per-output settings, keyed by connector name (`Virtual-1`, `HDMI-A-1`, `eDP-1`).
    pub output: BTreeMap<String, OutputConfig>,
    pub input: InputConfig,
    pub cursor: CursorConfig,
    /// Key combo → action, e.g. `"Super+Return" = "spawn foot"`. A file with a
    /// `[binds]` table has exactly those; one without has the shipped ones.
    pub binds: BTreeMap<KeyCombo, Action>,
    pub autostart: Autostart,
    pub renderer: RendererConfig,
    pub scanout: ScanoutConfig,
    pub shell: ShellConfig,
    pub lock: LockConfig,
    pub security: SecurityConfig,
}

impl Default for CompositorConfig {
    fn default() -> Self {
        Self {
            output: BTreeMap::new(),
            input: InputConfig::default(),
            cursor: CursorConfig::default(),
            binds: shipped_binds(),
            autostart: Autostart::default(),
            renderer: RendererConfig::default(),
            scanout: ScanoutConfig::default(),
            shell: ShellConfig::default(),
            lock: LockConfig::default(),
            security: SecurityConfig::default(),
        }
    }
}

/// The `[binds]` of the shipped defaults: a vendor or user file that says
/// nothing of bindings (the appliance's says only what to autostart) still gets
/// a session one can switch VTs and cycle windows in.
pub fn shipped_binds() -> BTreeMap<KeyCombo, Action> {
    #[derive(Deserialize)]
    struct BindsOnly {
        binds: BTreeMap<KeyCombo, Action>,
    }
    // The shipped file is checked by `shipped_defaults_parse_and_bind_the_basics`.
    toml::from_str::<BindsOnly>(DEFAULT_TOML)
        .map(|b| b.binds)
        .unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    pub mode: Option<Mode>,
    pub scale: f64,
    /// Position in the global space, logical pixels.
    pub position: Option<[i32; 2]>,
    pub transform: Transform,
    pub enabled: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            mode: None,
            scale: 1.0,
            position: None,
            transform: Transform::Normal,
            enabled: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transform {
    #[default]
    Normal,
    #[serde(rename = "90")]
    Rotate90,
    #[serde(rename = "180")]
    Rotate180,
    #[serde(rename = "270")]
    Rotate270,
    Flipped,
    #[serde(rename = "flipped-90")]
    Flipped90,
    #[serde(rename = "flipped-180")]
    Flipped180,
    #[serde(rename = "flipped-270")]
    Flipped270,
}

/// `WIDTHxHEIGHT[@HZ]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mode {
    pub width: u32,
    pub height: u32,
    pub refresh_hz: Option<f64>,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid mode `{s}`, expected WIDTHxHEIGHT[@HZ] such as 1920x1080@60");
        let (size, hz) = match s.split_once('@') {
            Some((size, hz)) => (size, Some(hz.parse::<f64>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let (w, h) = size.split_once('x').ok_or_else(bad)?;
        let (width, height) = (
            w.parse::<u32>().map_err(|_| bad())?,
            h.parse::<u32>().map_err(|_| bad())?,
        );
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            return Err(bad());
        }
        if hz.is_some_and(|hz| !(1.0..=1000.0).contains(&hz)) {
            return Err(bad());
        }
        Ok(Mode {
            width,
            height,
            refresh_hz: hz,
        })
    }
}

/// A number read from the file that must lie in `range`; out of it, the error
/// says what was expected (the loader adds the file, line and key).
pub(crate) fn in_range<'de, D, T>(
    d: D,
    range: std::ops::RangeInclusive<T>,
    expected: &str,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + std::fmt::Display,
{
    let v = T::deserialize(d)?;
    if !range.contains(&v) {
        return Err(serde::de::Error::custom(format!(
            "{v} is out of range, expected {expected}"
        )));
    }
    Ok(v)
}

/// The pointer's image.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CursorConfig {
    /// An xcursor theme, looked up in $XCURSOR_PATH (or ~/.icons,
    /// ~/.local/share/icons, /usr/share/icons, /usr/share/pixmaps).
    pub theme: String,
    /// Logical pixels.
    pub size: CursorSize,
    /// Hide the pointer from a key press until it moves again.
    pub hide_when_typing: bool,
}

impl Default for CursorConfig {
    fn default() -> Self {
        Self {
            theme: "default".into(),
            size: CursorSize(24),
            hide_when_typing: true,
        }
    }
}

/// A cursor size, 8 to 256 logical pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorSize(pub u32);

impl<'de> Deserialize<'de> for CursorSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        in_range(d, 8..=256, "8 to 256 pixels").map(CursorSize)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Autostart {
    /// Shell command lines run once the session is up.
    pub commands: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RendererKind {
    #[default]
    Pixman,
    Gles,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RendererConfig {
    /// Renderer of the headless backend (kms and nested always use GLES).
    pub headless: RendererKind,
    /// Background colour as `#rrggbb`.
    pub background: Colour,
    /// Border around the focused floating window.
    pub focus_border: Colour,
    /// Its width in logical pixels; 0 turns it off.
    pub focus_border_width: BorderWidth,
    /// How much a window is darkened while a dialog it owns is open, 0 to 1.
    pub dialog_dim: Fraction,
    /// Raster threads of Mesa's software GL (llvmpipe), where GLES has no GPU.
    pub llvmpipe_threads: RasterThreads,
}

impl Default for RendererConfig {
    fn default() -> Self {
        Self {
            headless: RendererKind::Pixman,
            background: Colour([0x20, 0x24, 0x2b]),
            focus_border: Colour([0x52, 0x94, 0xe2]),
            focus_border_width: BorderWidth(2),
            dialog_dim: Fraction(0.4),
            llvmpipe_threads: RasterThreads::Auto,
        }
    }
}

/// How many threads llvmpipe rasterizes on: `"auto"`, or a count from 0 (on the
/// compositor's own thread) to 32 (llvmpipe's limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RasterThreads {
    #[default]
    Auto,
    Count(u8),
}

impl<'de> Deserialize<'de> for RasterThreads {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(i64),
            Word(String),
        }
        let bad = |what: String| {
            serde::de::Error::custom(format!(
                "{what} is not a thread count, expected \"auto\" or 0 to 32"
            ))
        };
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "auto" => Ok(RasterThreads::Auto),
            Raw::Word(w) => Err(bad(format!("\"{w}\""))),
            Raw::Count(n) => match u8::try_from(n) {
                Ok(n) if n <= 32 => Ok(RasterThreads::Count(n)),
                _ => Err(bad(n.to_string())),
            },
        }
    }
}

/// A number from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fraction(pub f32);

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        in_range(d, 0.0..=1.0, "a number from 0 to 1").map(|v: f64| Fraction(v as f32))
    }
}

/// A border width, 0 to 64 pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BorderWidth(pub u32);

impl<'de> Deserialize<'de> for BorderWidth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        in_range(d, 0..=64, "0 to 64 pixels").map(BorderWidth)
    }
}

/// `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour(pub [u8; 3]);

impl FromStr for Colour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix('#')
            .filter(|h| h.len() == 6 && h.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| format!("invalid colour `{s}`, expected #rrggbb"))?;
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0);
        Ok(Colour([byte(0), byte(2), byte(4)]))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShellConfig {
    pub new_windows: NewWindows,
}

/// How a new main window opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NewWindows {
    /// Maximized in the usable area, as on a Chromebook.
    #[default]
    Maximized,
    /// Floating at the size the client picks, as on a desktop.
    Floating,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanoutConfig {
    /// Put a fullscreen client's buffer straight on the primary plane.
    pub direct: bool,
    pub overlay_planes: bool,
    pub cursor_plane: bool,
}

impl Default for ScanoutConfig {
    fn default() -> Self {
        Self {
            direct: true,
            overlay_planes: true,
            cursor_plane: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockConfig {
    /// The locker started by the `lock` action, e.g. `swaylock -f`.
    pub command: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Sandbox policy rules, applied in order; a later rule overrides an earlier one.
    pub rule: Vec<SecurityRule>,
}

/// Which privilege classes sandboxed clients of one engine and app id get.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityRule {
    /// Sandbox engine, e.g. `org.flatpak`; missing matches any.
    pub engine: Option<String>,
    /// App id, e.g. `org.gnome.Snapshot`; missing matches any.
    pub app_id: Option<String>,
    #[serde(default)]
    pub allow: Vec<Grantable>,
    #[serde(default)]
    pub deny: Vec<Grantable>,
}

/// A privilege class a rule may name. `public` needs no rule, and
/// `security-context` is never granted (contexts do not nest), so both are errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grantable(pub PrivilegeClass);

impl<'de> Deserialize<'de> for Grantable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let class = PrivilegeClass::deserialize(d)?;
        if class.is_grantable() {
            Ok(Self(class))
        } else {
            let names: Vec<_> = PrivilegeClass::GRANTABLE.iter().map(|c| c.name()).collect();
            Err(serde::de::Error::custom(format!(
                "`{}` cannot be granted or withheld; the classes are: {}",
                class.name(),
                names.join(", ")
            )))
        }
    }
}

/// Modifier bits of a [`KeyCombo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mods {
    pub ctrl: bool,
    pub alt: bool,
    pub shift: bool,
    pub logo: bool,
}

/// `Mod+Mod+Key`, e.g. `Super+Shift+Return` or `Ctrl+Alt+F1`. The key is an xkb
/// keysym name; the compositor resolves it against the keymap.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyCombo {
    pub mods: Mods,
    pub key: String,
}

impl FromStr for KeyCombo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut mods = Mods::default();
        let parts: Vec<&str> = s.split('+').map(str::trim).collect();
        let (key, modifiers) = parts
            .split_last()
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| format!("invalid key combo `{s}`: no key"))?;
        for m in modifiers {
            match m.to_ascii_lowercase().as_str() {
                "ctrl" | "control" => mods.ctrl = true,
                "alt" | "mod1" => mods.alt = true,
                "shift" => mods.shift = true,
                "super" | "logo" | "mod4" | "win" => mods.logo = true,
                other => {
                    return Err(format!(
                        "invalid key combo `{s}`: unknown modifier `{other}` (use Ctrl, Alt, Shift, Super)"
                    ));
                }
            }
        }
        Ok(KeyCombo {
            mods,
            key: (*key).to_owned(),
        })
    }
}

impl fmt::Display for KeyCombo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, name) in [
            (self.mods.logo, "Super"),
            (self.mods.ctrl, "Ctrl"),
            (self.mods.alt, "Alt"),
            (self.mods.shift, "Shift"),
        ] {
            if on {
                write!(f, "{name}+")?;
            }
        }
        f.write_str(&self.key)
    }
}

/// What a key binding does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Spawn(String),
    Close,
    CycleFocus,
    CycleFocusBack,
    Fullscreen,
    Maximize,
    Lock,
    /// Switch to virtual terminal N (1..=12); only meaningful on the kms backend.
    SwitchVt(u8),
    /// A Chromebook top-row or media key: runs the configured command.
    Run(String),
    Quit,
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (verb, arg) = match s.trim().split_once(char::is_whitespace) {
            Some((v, a)) => (v, a.trim()),
            None => (s.trim(), ""),
        };
        let need_arg = |a: &str| {
            if a.is_empty() {
                Err(format!("action `{verb}` needs a command"))
            } else {
                Ok(a.to_owned())
            }
        };
        let no_arg = |a: Action| {
            if arg.is_empty() {
                Ok(a)
            } else {
                Err(format!("action `{verb}` takes no argument"))
            }
        };
        match verb {
            "spawn" => Ok(Action::Spawn(need_arg(arg)?)),
            "run" => Ok(Action::Run(need_arg(arg)?)),
            "close" => no_arg(Action::Close),
            "cycle-focus" => no_arg(Action::CycleFocus),
            "cycle-focus-back" => no_arg(Action::CycleFocusBack),
            "fullscreen" => no_arg(Action::Fullscreen),
            "maximize" => no_arg(Action::Maximize),
            "lock" => no_arg(Action::Lock),
            "quit" => no_arg(Action::Quit),
            "vt" => match arg.parse::<u8>() {
                Ok(n @ 1..=12) => Ok(Action::SwitchVt(n)),
                _ => Err(format!(
                    "action `vt` needs a terminal number 1..=12, got `{arg}`"
                )),
            },
            other => Err(format!(
                "unknown action `{other}` (expected spawn, run, close, cycle-focus, \
                 cycle-focus-back, fullscreen, maximize, lock, vt, quit)"
            )),
        }
    }
}

macro_rules! deserialize_from_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
deserialize_from_str!(Mode, Colour, KeyCombo, Action);

/// The shipped defaults, the same text as `config/defaults/compositor.toml`.
pub const DEFAULT_TOML: &str = include_str!("../defaults/compositor.toml");

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<CompositorConfig, crate::ConfigError> {
        crate::parse(text, Path::new("compositor.toml"))
    }

    #[test]
    fn shipped_defaults_parse_and_bind_the_basics() {
        let c = parse(DEFAULT_TOML).unwrap();
        let spawn = KeyCombo::from_str("Super+Return").unwrap();
        assert_eq!(c.binds.get(&spawn), Some(&Action::Spawn("foot".into())));
        assert_eq!(
            c.binds.get(&KeyCombo::from_str("Alt+Tab").unwrap()),
            Some(&Action::CycleFocus)
        );
        assert_eq!(
            c.binds.get(&KeyCombo::from_str("Ctrl+Alt+F2").unwrap()),
            Some(&Action::SwitchVt(2))
        );
        assert!(c.scanout.direct && c.scanout.overlay_planes);
    }

    #[test]
    fn new_windows_policy_parses_and_a_bad_one_names_line_and_key() {
        assert_eq!(
            parse(DEFAULT_TOML).unwrap().shell.new_windows,
            NewWindows::Maximized
        );
        let c = parse("[shell]\nnew_windows = \"floating\"\n").unwrap();
        assert_eq!(c.shell.new_windows, NewWindows::Floating);
        let e = parse("[shell]\n\nnew_windows = \"tiled\"\n").unwrap_err();
        let loc = e.location().unwrap();
        assert_eq!(loc.line, 3);
        assert_eq!(loc.key, "shell.new_windows");
    }

    #[test]
    fn cursor_settings_parse_and_a_bad_size_names_line_and_key() {
        let shipped = parse(DEFAULT_TOML).unwrap().cursor;
        assert_eq!(shipped, CursorConfig::default());
        let c = parse("[cursor]\ntheme = \"Adwaita\"\nsize = 48\n").unwrap();
        assert_eq!((c.cursor.theme.as_str(), c.cursor.size.0), ("Adwaita", 48));
        let e = parse("[cursor]\nsize = 4\n").unwrap_err();
        let loc = e.location().unwrap();
        assert_eq!((loc.line, loc.key.as_str()), (2, "cursor.size"));
        assert!(e.to_string().contains("expected 8 to 256"), "{e}");
    }

    #[test]
    fn pointer_settings_parse_and_an_accel_speed_out_of_range_names_line_and_key() {
        let c = parse(
            "[input.touchpad]\ntap = false\naccel_speed = -0.25\n[input.mouse]\nnatural_scroll = true\naccel_speed = 1\n",
        )
        .unwrap();
        assert!(!c.input.touchpad.tap && c.input.touchpad.disable_while_typing);
        assert_eq!(c.input.touchpad.accel_speed, AccelSpeed(-0.25));
        assert!(c.input.mouse.natural_scroll);
        assert_eq!(c.input.mouse.accel_speed, AccelSpeed(1.0));
        let e = parse("[input.mouse]\n\naccel_speed = 1.5\n").unwrap_err();
        let loc = e.location().unwrap();
        assert_eq!((loc.line, loc.key.as_str()), (3, "input.mouse.accel_speed"));
        assert!(e.to_string().contains("expected -1.0 to 1.0"), "{e}");
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(parse("").unwrap(), CompositorConfig::default());
    }

    #[test]
    fn a_file_without_binds_has_the_shipped_ones_and_a_binds_table_replaces_them() {
        let shipped = parse(DEFAULT_TOML).unwrap().binds;
        assert!(shipped.len() > 10, "{shipped:?}");
        let c = parse("[autostart]\ncommands = [\"foot\"]\n").unwrap();
        assert_eq!(c.binds, shipped);
        let c = parse("[binds]\n\"Super+t\" = \"spawn foot\"\n").unwrap();
        assert_eq!(c.binds.len(), 1, "{:?}", c.binds);
        let c = parse("[binds]\n").unwrap();
        assert!(c.binds.is_empty(), "an empty table means no bindings");
    }

    #[test]
    fn bad_action_names_line_and_key() {
        let e = parse("[binds]\n\"Super+q\" = \"close\"\n\"Super+x\" = \"explode\"\n").unwrap_err();
        let loc = e.location().unwrap();
        assert_eq!(loc.line, 3);
        assert_eq!(loc.key, "binds.Super+x");
        assert!(e.to_string().contains("unknown action `explode`"), "{e}");
    }

    #[test]
    fn bad_combo_and_mode_and_unknown_key_are_errors() {
        let e = parse("[binds]\n\"Hyper+q\" = \"close\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown modifier `hyper`"), "{e}");
        let e = parse("[output.Virtual-1]\nmode = \"big\"\n").unwrap_err();
        assert_eq!(e.location().unwrap().key, "output.Virtual-1.mode");
        let e = parse("[input.keyboard]\nlayuot = \"de\"\n").unwrap_err();
        assert_eq!(e.location().unwrap().line, 2);
        assert!(e.to_string().contains("unknown field `layuot`"), "{e}");
        let e = parse("[binds]\n\"Ctrl+Alt+F1\" = \"vt 13\"\n").unwrap_err();
        assert!(e.to_string().contains("1..=12"), "{e}");
    }

    #[test]
    fn security_rules_parse_and_bad_classes_name_line_and_key() {
        let c = parse(
            "[[security.rule]]\nengine = \"org.flatpak\"\napp_id = \"org.gnome.Snapshot\"\n\
             allow = [\"screen-capture\"]\ndeny = [\"gamma\"]\n",
        )
        .unwrap();
        let r = &c.security.rule[0];
        assert_eq!(r.allow, [Grantable(PrivilegeClass::ScreenCapture)]);
        assert_eq!(r.deny, [Grantable(PrivilegeClass::Gamma)]);
        let e = parse("[[security.rule]]\napp_id = \"x\"\nallow = [\"screen-capture\", \"security-context\"]\n")
            .unwrap_err();
        let loc = e.location().unwrap();
        assert_eq!(
            (loc.line, loc.key.as_str()),
            (3, "security.rule[0].allow[1]"),
            "{e}"
        );
        assert!(e.to_string().contains("cannot be granted"), "{e}");
        let e = parse("[[security.rule]]\nallow = [\"screencopy\"]\n").unwrap_err();
        assert!(
            e.to_string().contains("unknown variant `screencopy`"),
            "{e}"
        );
        let e =
            parse("[[security.rule]]\ninterface = \"zwlr_screencopy_manager_v1\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `interface`"), "{e}");
    }

    #[test]
    fn combos_print_canonically() {
        let c: KeyCombo = "shift+super+a".parse().unwrap();
        assert_eq!(c.to_string(), "Super+Shift+a");
        let m: Mode = "1280x720".parse().unwrap();
        assert_eq!(m.refresh_hz, None);
        assert_eq!("#ff8000".parse::<Colour>().unwrap(), Colour([255, 128, 0]));
        assert!("ff8000".parse::<Colour>().is_err());
        let bad = crate::parse::<CompositorConfig>(
            "[renderer]\ndialog_dim = 1.5\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("t.toml:2") && bad.contains("dialog_dim"),
            "{bad}"
        );
        let bad = crate::parse::<CompositorConfig>(
            "[renderer]\nfocus_border_width = 100\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("focus_border_width"), "{bad}");
    }

    #[test]
    fn llvmpipe_threads_take_auto_or_a_count_and_name_the_key_otherwise() {
        let threads = |v: &str| {
            crate::parse::<CompositorConfig>(
                &format!("[renderer]\nllvmpipe_threads = {v}\n"),
                std::path::Path::new("t.toml"),
            )
            .map(|c| c.renderer.llvmpipe_threads)
            .map_err(|e| e.to_string())
        };
        assert_eq!(threads("\"auto\""), Ok(RasterThreads::Auto));
        assert_eq!(threads("0"), Ok(RasterThreads::Count(0)));
        assert_eq!(threads("32"), Ok(RasterThreads::Count(32)));
        for bad in ["33", "-1", "\"many\"", "1.5"] {
            let e = threads(bad).unwrap_err();
            assert!(
                e.contains("t.toml:2") && e.contains("llvmpipe_threads"),
                "{bad}: {e}"
            );
        }
        assert!(
            threads("\"many\"")
                .unwrap_err()
                .contains("\"auto\" or 0 to 32")
        );
    }
}
