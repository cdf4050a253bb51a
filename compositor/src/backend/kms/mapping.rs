//! Which output a device that reports absolute positions spans: a touch screen,
//! a drawing tablet, a virtual machine's tablet. Its whole range maps onto one
//! output. The config may name that output; otherwise it is chosen by where the
//! device sits, as ChromeOS and Mutter pair a laptop's touch screen with its
//! own panel even when an external monitor comes first.
//!
//! Pure rules; the facts come from sysfs (`DeviceFacts::read`, in `devices`).

/// Where a device is attached, from the kernel's bus type (`id/bustype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// I2C, SPI, the platform's own buses, virtual devices: part of the machine.
    BuiltIn,
    /// USB or Bluetooth: something plugged in, most likely beside its own screen.
    External,
}

impl Placement {
    /// `BUS_USB` (0x03) and `BUS_BLUETOOTH` (0x05) from linux/input.h are the
    /// buses a separate touch monitor or tablet comes on.
    pub fn from_bustype(bustype: u16) -> Placement {
        match bustype {
            0x03 | 0x05 => Placement::External,
            _ => Placement::BuiltIn,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Placement::BuiltIn => "built-in",
            Placement::External => "external",
        }
    }
}

/// The bus type as sysfs writes it: four hex digits (`0003`).
pub fn parse_bustype(text: &str) -> Option<u16> {
    u16::from_str_radix(text.trim(), 16).ok()
}

/// Whether an evdev `capabilities/abs` bitmap has `ABS_X`: space-separated hex
/// words, most significant first, so `ABS_X` (bit 0) is the last word's low bit.
pub fn has_abs_x(bitmap: &str) -> bool {
    bitmap
        .split_whitespace()
        .last()
        .and_then(|w| u64::from_str_radix(w, 16).ok())
        .is_some_and(|w| w & 1 != 0)
}

/// A laptop's or tablet's own panel, by its connector type.
pub fn is_builtin_panel(output: &str) -> bool {
    ["eDP-", "LVDS-", "DSI-"]
        .iter()
        .any(|prefix| output.starts_with(prefix))
}

/// The output a device spans, of `outputs` in layout order:
/// - the one the config names, when it is connected;
/// - otherwise a built-in device's is the first built-in panel, an external
///   device's the first output that is not one;
/// - otherwise the first output.
///
/// `None` only when there is no output at all.
pub fn mapped_output<'a>(
    wanted: Option<&str>,
    placement: Placement,
    outputs: &'a [String],
) -> Option<&'a str> {
    if let Some(name) = wanted
        && let Some(o) = outputs.iter().find(|o| *o == name)
    {
        return Some(o);
    }
    let fits = |o: &&String| match placement {
        Placement::BuiltIn => is_builtin_panel(o),
        Placement::External => !is_builtin_panel(o),
    };
    outputs
        .iter()
        .find(fits)
        .or_else(|| outputs.first())
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_built_in_touch_screen_spans_the_panel_even_when_a_monitor_comes_first() {
        let o = outputs(&["HDMI-A-1", "eDP-1"]);
        assert_eq!(mapped_output(None, Placement::BuiltIn, &o), Some("eDP-1"));
        // A USB touch monitor beside it takes the monitor.
        assert_eq!(
            mapped_output(None, Placement::External, &o),
            Some("HDMI-A-1")
        );
        let o = outputs(&["eDP-1", "DP-2"]);
        assert_eq!(mapped_output(None, Placement::External, &o), Some("DP-2"));
        assert_eq!(mapped_output(None, Placement::BuiltIn, &o), Some("eDP-1"));
    }

    #[test]
    fn with_nothing_that_fits_the_first_output_is_spanned() {
        // A virtual machine: no panel, a virtual (built-in) tablet.
        let o = outputs(&["Virtual-1", "Virtual-2"]);
        assert_eq!(
            mapped_output(None, Placement::BuiltIn, &o),
            Some("Virtual-1")
        );
        // A laptop with its lid shut and no monitor: only the panel there is.
        let o = outputs(&["eDP-1"]);
        assert_eq!(mapped_output(None, Placement::External, &o), Some("eDP-1"));
        assert_eq!(mapped_output(None, Placement::BuiltIn, &[]), None);
    }

    #[test]
    fn the_configured_output_wins_while_it_is_connected() {
        let o = outputs(&["eDP-1", "HDMI-A-1"]);
        assert_eq!(
            mapped_output(Some("HDMI-A-1"), Placement::BuiltIn, &o),
            Some("HDMI-A-1")
        );
        // Unplugged: back to the rule, not to nowhere.
        assert_eq!(
            mapped_output(Some("DP-3"), Placement::BuiltIn, &o),
            Some("eDP-1")
        );
    }

    #[test]
    fn panels_are_known_by_their_connector_type() {
        for panel in ["eDP-1", "LVDS-1", "DSI-2"] {
            assert!(is_builtin_panel(panel), "{panel}");
        }
        for other in ["DP-1", "HDMI-A-1", "Virtual-1", "DVI-D-1", "eDP"] {
            assert!(!is_builtin_panel(other), "{other}");
        }
    }

    #[test]
    fn sysfs_facts_parse() {
        assert_eq!(parse_bustype("0003\n"), Some(3));
        assert_eq!(parse_bustype("0018"), Some(0x18));
        assert_eq!(parse_bustype(""), None);
        assert_eq!(Placement::from_bustype(0x03), Placement::External);
        assert_eq!(Placement::from_bustype(0x05), Placement::External);
        // I2C, SPI, i8042, virtual (QEMU's virtio devices).
        for bus in [0x18, 0x1c, 0x11, 0x06] {
            assert_eq!(Placement::from_bustype(bus), Placement::BuiltIn, "{bus:#x}");
        }
        // QEMU's tablet: ABS_X, ABS_Y; a touchscreen with its MT axes; a mouse.
        assert!(has_abs_x("3\n"));
        assert!(has_abs_x("660800000000003"));
        assert!(has_abs_x("260800000000000 3"));
        assert!(!has_abs_x("0"));
        assert!(!has_abs_x("100000000 0"));
        assert!(!has_abs_x(""));
    }
}
