//! `[input]`: the keyboard, each kind of pointing device, and single devices by
//! name. A device's own table wins over its kind's section, key by key, as in
//! sway's `input <identifier>` blocks.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::in_range;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    pub keyboard: KeyboardConfig,
    pub touchpad: TouchpadConfig,
    pub mouse: MouseConfig,
    /// Touch screens.
    pub touch: AbsoluteConfig,
    /// Absolute pointers: drawing tablets, a virtual machine's tablet.
    pub tablet: AbsoluteConfig,
    /// Keyed by libinput's device name, as `tessera msg inputs` lists it.
    pub device: BTreeMap<String, DeviceConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyboardConfig {
    pub rules: String,
    pub model: String,
    pub layout: String,
    pub variant: String,
    pub options: String,
    /// Keys per second.
    pub repeat_rate: i32,
    /// Milliseconds before repeating starts.
    pub repeat_delay: i32,
}

impl Default for KeyboardConfig {
    fn default() -> Self {
        Self {
            rules: String::new(),
            model: String::new(),
            layout: "us".into(),
            variant: String::new(),
            options: String::new(),
            repeat_rate: 25,
            repeat_delay: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TouchpadConfig {
    pub tap: bool,
    pub natural_scroll: bool,
    /// libinput pointer acceleration, -1.0 ..= 1.0.
    pub accel_speed: AccelSpeed,
    pub disable_while_typing: bool,
    /// No events from a touchpad while an external mouse is plugged in
    /// (libinput's send-events mode, sway's `events disabled_on_external_mouse`).
    pub disabled_on_external_mouse: bool,
}

impl Default for TouchpadConfig {
    fn default() -> Self {
        Self {
            tap: true,
            natural_scroll: true,
            accel_speed: AccelSpeed(0.0),
            disable_while_typing: true,
            disabled_on_external_mouse: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MouseConfig {
    pub natural_scroll: bool,
    pub accel_speed: AccelSpeed,
}

/// Where a device that reports absolute positions lands.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AbsoluteConfig {
    /// The output its whole range spans. Unset, or naming an output that is
    /// not connected: chosen by where the device sits (a built-in one spans the
    /// built-in panel).
    pub map_to_output: Option<OutputName>,
}

/// One device's own settings; what it leaves unset comes from its kind's section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// `false`: libinput sends no events from it at all.
    pub enabled: Option<bool>,
    pub tap: Option<bool>,
    pub natural_scroll: Option<bool>,
    pub accel_speed: Option<AccelSpeed>,
    pub disable_while_typing: Option<bool>,
    /// Touch screens and absolute pointers only.
    pub map_to_output: Option<OutputName>,
}

/// libinput's normalized pointer speed: -1.0 (slowest) to 1.0 (fastest), 0.0 being
/// the device's default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AccelSpeed(pub f64);

impl<'de> Deserialize<'de> for AccelSpeed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        in_range(d, -1.0..=1.0, "-1.0 to 1.0").map(AccelSpeed)
    }
}

/// A connector name as `tessera msg outputs` shows it (`eDP-1`, `HDMI-A-1`).
/// Whether it is connected is known only at run time; an empty name is a
/// mistake at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputName(pub String);

impl<'de> Deserialize<'de> for OutputName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name.trim().is_empty() || name.contains(char::is_whitespace) {
            return Err(serde::de::Error::custom(format!(
                "{name:?} is not an output name, expected a connector name such as \"eDP-1\" (see `tessera msg outputs`)"
            )));
        }
        Ok(OutputName(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compositor::CompositorConfig;
    use std::path::Path;

    fn parse(text: &str) -> Result<CompositorConfig, crate::ConfigError> {
        crate::parse(text, Path::new("compositor.toml"))
    }

    #[test]
    fn devices_by_name_set_only_what_they_say() {
        let c = parse(
            "[input.touch]\nmap_to_output = \"eDP-1\"\n\
             [input.device.\"Elan Touchpad\"]\ntap = false\naccel_speed = 0.25\n\
             [input.device.\"Wacom Intuos S Pen\"]\nmap_to_output = \"HDMI-A-1\"\nenabled = false\n",
        )
        .unwrap();
        let input = c.input;
        assert_eq!(input.touch.map_to_output, Some(OutputName("eDP-1".into())));
        assert_eq!(input.tablet.map_to_output, None);
        let pad = &input.device["Elan Touchpad"];
        assert_eq!(
            *pad,
            DeviceConfig {
                tap: Some(false),
                accel_speed: Some(AccelSpeed(0.25)),
                ..DeviceConfig::default()
            }
        );
        let pen = &input.device["Wacom Intuos S Pen"];
        assert_eq!(pen.enabled, Some(false));
        assert_eq!(pen.map_to_output, Some(OutputName("HDMI-A-1".into())));
        assert!(!input.touchpad.disabled_on_external_mouse);
    }

    #[test]
    fn a_bad_device_key_names_its_line_and_device() {
        let err =
            parse("[input.device.\"Elan Touchpad\"]\ntap = false\ntapping = true\n").unwrap_err();
        let at = err.location().unwrap();
        assert_eq!(at.line, 3, "{err}");
        assert!(at.key.contains("Elan Touchpad"), "{err}");
        assert!(err.to_string().contains("tapping"), "{err}");

        let err = parse("[input.device.\"Logitech M705\"]\naccel_speed = 2.0\n").unwrap_err();
        let at = err.location().unwrap();
        assert_eq!(
            (at.line, at.key.as_str()),
            (2, "input.device.Logitech M705.accel_speed")
        );
        assert!(err.to_string().contains("-1.0 to 1.0"), "{err}");
    }

    #[test]
    fn an_empty_output_name_is_refused() {
        for bad in ["\"\"", "\"e DP-1\""] {
            let err = parse(&format!("[input.touch]\nmap_to_output = {bad}\n")).unwrap_err();
            let at = err.location().unwrap();
            assert_eq!((at.line, at.key.as_str()), (2, "input.touch.map_to_output"));
            assert!(err.to_string().contains("not an output name"), "{err}");
        }
    }
}
