//! libinput devices: the config applied to each one when it appears and again
//! on every reload, which output an absolute device spans, and what `msg
//! inputs` says of them. Settings come from the device's kind (`[input.touchpad]`,
//! `[input.mouse]`, `[input.touch]`, `[input.tablet]`), overridden key by key by
//! its own `[input.device."NAME"]` table.

use smithay::reexports::input::{self as libinput, DeviceCapability, SendEventsMode};
use tessera_config::compositor::{DeviceConfig, InputConfig};

use super::mapping::{self, Placement};
use crate::input::{BTN_MIDDLE, BTN_RIGHT};
use crate::ipc::proto::InputDeviceInfo;

/// libinput has no device class: a pointer that can tap is a touchpad (sway and
/// niri tell them apart the same way), any other pointer counts as a mouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointerKind {
    Touchpad,
    Mouse,
}

impl PointerKind {
    /// Its config section, `[input.NAME]`.
    pub fn name(self) -> &'static str {
        match self {
            PointerKind::Touchpad => "touchpad",
            PointerKind::Mouse => "mouse",
        }
    }
}

/// A device that reports absolute positions, and so spans one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbsoluteKind {
    /// `[input.touch]`.
    Touch,
    /// `[input.tablet]`: a tablet tool, or a pointer with absolute axes (a
    /// virtual machine's tablet).
    Tablet,
}

impl AbsoluteKind {
    /// Its config section, `[input.NAME]`.
    pub fn name(self) -> &'static str {
        match self {
            AbsoluteKind::Touch => "touch",
            AbsoluteKind::Tablet => "tablet",
        }
    }
}

/// linux/input-event-codes.h: a stylus's own buttons.
const BTN_STYLUS: u32 = 0x14b;
const BTN_STYLUS2: u32 = 0x14c;

/// The pointer button a stylus's button clicks: its first is the right
/// button, its second the middle one (wlroots' and libinput's tablet-mode
/// pointer emulation agree); anything else goes through as it is.
pub fn stylus_button(code: u32) -> u32 {
    match code {
        BTN_STYLUS => BTN_RIGHT,
        BTN_STYLUS2 => BTN_MIDDLE,
        other => other,
    }
}

/// What the kernel says of a device, which libinput 1.22 does not: read from
/// sysfs once, when the device appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFacts {
    pub placement: Placement,
    /// The evdev node has `ABS_X`: a pointer that is not a touchpad but has it
    /// reports where it is, not how far it moved.
    pub abs_x: bool,
}

impl DeviceFacts {
    /// From `/sys/class/input/SYSNAME/device/`; a device sysfs does not describe
    /// (it went away meanwhile) counts as built in, without absolute axes.
    pub fn read(sysname: &str) -> DeviceFacts {
        let dir = std::path::Path::new("/sys/class/input")
            .join(sysname)
            .join("device");
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        DeviceFacts {
            placement: mapping::parse_bustype(&read("id/bustype"))
                .map_or(Placement::BuiltIn, Placement::from_bustype),
            abs_x: mapping::has_abs_x(&read("capabilities/abs")),
        }
    }
}

/// A device the session has, with what sysfs said of it.
pub struct TrackedDevice {
    pub device: libinput::Device,
    pub facts: DeviceFacts,
}

/// What one pointer is set to. `None` leaves a setting the device lacks alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointerSettings {
    pub tap: Option<bool>,
    pub natural_scroll: bool,
    pub accel_speed: f64,
    pub disable_while_typing: Option<bool>,
}

impl PointerSettings {
    pub fn for_kind(kind: PointerKind, input: &InputConfig) -> PointerSettings {
        match kind {
            PointerKind::Touchpad => PointerSettings {
                tap: Some(input.touchpad.tap),
                natural_scroll: input.touchpad.natural_scroll,
                accel_speed: input.touchpad.accel_speed.0,
                disable_while_typing: Some(input.touchpad.disable_while_typing),
            },
            PointerKind::Mouse => PointerSettings {
                tap: None,
                natural_scroll: input.mouse.natural_scroll,
                accel_speed: input.mouse.accel_speed.0,
                disable_while_typing: None,
            },
        }
    }

    /// The kind's section, then what the device's own table sets. Its table
    /// may ask a mouse to tap; the device refuses what it cannot do.
    pub fn resolve(kind: PointerKind, own: Option<&DeviceConfig>, input: &InputConfig) -> Self {
        let mut s = Self::for_kind(kind, input);
        if let Some(own) = own {
            s.tap = own.tap.or(s.tap);
            s.natural_scroll = own.natural_scroll.unwrap_or(s.natural_scroll);
            s.accel_speed = own.accel_speed.map_or(s.accel_speed, |a| a.0);
            s.disable_while_typing = own.disable_while_typing.or(s.disable_while_typing);
        }
        s
    }
}

/// libinput's send-events mode: whether a device's events reach the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendEvents {
    Enabled,
    Disabled,
    /// A touchpad that goes quiet while an external mouse is plugged in.
    DisabledOnExternalMouse,
}

impl SendEvents {
    /// The device's own `enabled` wins; otherwise a touchpad follows
    /// `[input.touchpad] disabled_on_external_mouse`.
    pub fn resolve(
        kind: Option<PointerKind>,
        own: Option<&DeviceConfig>,
        input: &InputConfig,
    ) -> Self {
        match own.and_then(|o| o.enabled) {
            Some(false) => SendEvents::Disabled,
            Some(true) => SendEvents::Enabled,
            None if kind == Some(PointerKind::Touchpad)
                && input.touchpad.disabled_on_external_mouse =>
            {
                SendEvents::DisabledOnExternalMouse
            }
            None => SendEvents::Enabled,
        }
    }

    fn mode(self) -> SendEventsMode {
        match self {
            SendEvents::Enabled => SendEventsMode::ENABLED,
            SendEvents::Disabled => SendEventsMode::DISABLED,
            SendEvents::DisabledOnExternalMouse => SendEventsMode::DISABLED_ON_EXTERNAL_MOUSE,
        }
    }

    fn name(mode: SendEventsMode) -> &'static str {
        if mode.contains(SendEventsMode::DISABLED) {
            "disabled"
        } else if mode.contains(SendEventsMode::DISABLED_ON_EXTERNAL_MOUSE) {
            "disabled-on-external-mouse"
        } else {
            "enabled"
        }
    }
}

/// The output the config asks an absolute device to span, if any: its own
/// table's, else its kind's section's.
pub fn wanted_output<'a>(
    kind: AbsoluteKind,
    own: Option<&'a DeviceConfig>,
    input: &'a InputConfig,
) -> Option<&'a str> {
    let section = match kind {
        AbsoluteKind::Touch => &input.touch,
        AbsoluteKind::Tablet => &input.tablet,
    };
    own.and_then(|o| o.map_to_output.as_ref())
        .or(section.map_to_output.as_ref())
        .map(|n| n.0.as_str())
}

pub fn pointer_kind(device: &libinput::Device) -> Option<PointerKind> {
    if !device.has_capability(DeviceCapability::Pointer) {
        return None;
    }
    Some(if device.config_tap_finger_count() > 0 {
        PointerKind::Touchpad
    } else {
        PointerKind::Mouse
    })
}

pub fn absolute_kind(tracked: &TrackedDevice) -> Option<AbsoluteKind> {
    let device = &tracked.device;
    if device.has_capability(DeviceCapability::Touch) {
        Some(AbsoluteKind::Touch)
    } else if device.has_capability(DeviceCapability::TabletTool)
        || (pointer_kind(device) == Some(PointerKind::Mouse) && tracked.facts.abs_x)
    {
        Some(AbsoluteKind::Tablet)
    } else {
        None
    }
}

/// The output `tracked` spans now, of `outputs` in layout order.
pub fn output_for<'a>(
    tracked: &TrackedDevice,
    kind: AbsoluteKind,
    input: &InputConfig,
    outputs: &'a [String],
) -> Option<&'a str> {
    let own = input.device.get(tracked.device.name());
    mapping::mapped_output(
        wanted_output(kind, own, input),
        tracked.facts.placement,
        outputs,
    )
}

/// Sets a device up from the config. Each setting is tried only where the
/// device has it (an absolute tablet has no acceleration, a mouse no tapping);
/// a refusal is logged and the rest still applies.
pub fn configure(tracked: &mut TrackedDevice, input: &InputConfig) {
    let device = &mut tracked.device;
    let own = input.device.get(device.name());
    let kind = pointer_kind(device);
    let mut refused = Vec::new();
    let send = SendEvents::resolve(kind, own, input);
    // Every device takes "enabled" (an empty mode, which every set contains);
    // the others only where libinput offers them.
    if !device.config_send_events_modes().contains(send.mode())
        || device.config_send_events_set_mode(send.mode()).is_err()
    {
        refused.push("enabled");
    }
    if let Some(kind) = kind {
        let want = PointerSettings::resolve(kind, own, input);
        if let Some(tap) = want.tap
            && device.config_tap_finger_count() > 0
            && device.config_tap_set_enabled(tap).is_err()
        {
            refused.push("tap");
        }
        if device.config_scroll_has_natural_scroll()
            && device
                .config_scroll_set_natural_scroll_enabled(want.natural_scroll)
                .is_err()
        {
            refused.push("natural_scroll");
        }
        if device.config_accel_is_available()
            && device.config_accel_set_speed(want.accel_speed).is_err()
        {
            refused.push("accel_speed");
        }
        if let Some(dwt) = want.disable_while_typing
            && device.config_dwt_is_available()
            && device.config_dwt_set_enabled(dwt).is_err()
        {
            refused.push("disable_while_typing");
        }
    }
    if !refused.is_empty() {
        tracing::warn!(name = device.name(), ?refused, "libinput refused settings");
    }
}

/// What `msg inputs` says of a device, read back from libinput, so it shows
/// what is in effect rather than what was asked for.
pub fn describe(
    tracked: &TrackedDevice,
    input: &InputConfig,
    outputs: &[String],
) -> InputDeviceInfo {
    let device = &tracked.device;
    let capabilities = [
        (DeviceCapability::Keyboard, "keyboard"),
        (DeviceCapability::Pointer, "pointer"),
        (DeviceCapability::Touch, "touch"),
        (DeviceCapability::TabletTool, "tablet-tool"),
        (DeviceCapability::TabletPad, "tablet-pad"),
        (DeviceCapability::Gesture, "gesture"),
        (DeviceCapability::Switch, "switch"),
    ]
    .into_iter()
    .filter(|(c, _)| device.has_capability(*c))
    .map(|(_, name)| name.to_owned())
    .collect();
    let kind = pointer_kind(device);
    let absolute = absolute_kind(tracked);
    let mut sections: Vec<String> = [
        device
            .has_capability(DeviceCapability::Keyboard)
            .then_some("keyboard"),
        kind.map(PointerKind::name),
        absolute.map(AbsoluteKind::name),
    ]
    .into_iter()
    .flatten()
    .map(|name| format!("input.{name}"))
    .collect();
    if input.device.contains_key(device.name()) {
        sections.push(format!("input.device.{:?}", device.name()));
    }
    InputDeviceInfo {
        name: device.name().to_owned(),
        sysname: device.sysname().to_owned(),
        capabilities,
        kind: kind.map(|k| k.name().to_owned()),
        placement: tracked.facts.placement.name().to_owned(),
        sections,
        send_events: SendEvents::name(device.config_send_events_mode()).to_owned(),
        output: absolute
            .and_then(|a| output_for(tracked, a, input, outputs))
            .map(str::to_owned),
        tap: (device.config_tap_finger_count() > 0).then(|| device.config_tap_enabled()),
        natural_scroll: device
            .config_scroll_has_natural_scroll()
            .then(|| device.config_scroll_natural_scroll_enabled()),
        accel_speed: device
            .config_accel_is_available()
            .then(|| device.config_accel_speed()),
        disable_while_typing: device
            .config_dwt_is_available()
            .then(|| device.config_dwt_enabled()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::BTN_LEFT;
    use tessera_config::compositor::{AbsoluteConfig, AccelSpeed, OutputName};

    #[test]
    fn touchpads_and_mice_take_their_own_sections() {
        let mut input = InputConfig::default();
        input.touchpad.tap = false;
        input.touchpad.accel_speed = AccelSpeed(0.5);
        input.mouse.natural_scroll = true;
        input.mouse.accel_speed = AccelSpeed(-0.75);
        assert_eq!(
            PointerSettings::for_kind(PointerKind::Touchpad, &input),
            PointerSettings {
                tap: Some(false),
                natural_scroll: true,
                accel_speed: 0.5,
                disable_while_typing: Some(true),
            }
        );
        // A mouse neither taps nor has typing to be disabled by.
        assert_eq!(
            PointerSettings::for_kind(PointerKind::Mouse, &input),
            PointerSettings {
                tap: None,
                natural_scroll: true,
                accel_speed: -0.75,
                disable_while_typing: None,
            }
        );
    }

    #[test]
    fn the_shipped_defaults_tap_and_scroll_naturally_on_touchpads_only() {
        let input = InputConfig::default();
        let pad = PointerSettings::for_kind(PointerKind::Touchpad, &input);
        assert_eq!((pad.tap, pad.natural_scroll), (Some(true), true));
        let mouse = PointerSettings::for_kind(PointerKind::Mouse, &input);
        assert_eq!((mouse.tap, mouse.natural_scroll), (None, false));
    }

    #[test]
    fn a_devices_own_table_wins_key_by_key() {
        let mut input = InputConfig::default();
        input.mouse.natural_scroll = true;
        input.mouse.accel_speed = AccelSpeed(0.5);
        let own = DeviceConfig {
            accel_speed: Some(AccelSpeed(-0.5)),
            ..DeviceConfig::default()
        };
        // Its accel_speed, the section's natural scrolling.
        assert_eq!(
            PointerSettings::resolve(PointerKind::Mouse, Some(&own), &input),
            PointerSettings {
                tap: None,
                natural_scroll: true,
                accel_speed: -0.5,
                disable_while_typing: None,
            }
        );
        let own = DeviceConfig {
            tap: Some(false),
            disable_while_typing: Some(false),
            ..DeviceConfig::default()
        };
        let pad = PointerSettings::resolve(PointerKind::Touchpad, Some(&own), &input);
        assert_eq!(
            (pad.tap, pad.natural_scroll, pad.disable_while_typing),
            (Some(false), true, Some(false))
        );
        assert_eq!(
            PointerSettings::resolve(PointerKind::Touchpad, None, &input),
            PointerSettings::for_kind(PointerKind::Touchpad, &input)
        );
    }

    #[test]
    fn send_events_follow_the_device_then_the_touchpad_section() {
        let mut input = InputConfig::default();
        let off = DeviceConfig {
            enabled: Some(false),
            ..DeviceConfig::default()
        };
        let on = DeviceConfig {
            enabled: Some(true),
            ..DeviceConfig::default()
        };
        let pad = Some(PointerKind::Touchpad);
        assert_eq!(SendEvents::resolve(pad, None, &input), SendEvents::Enabled);
        // A keyboard can be switched off by name too.
        assert_eq!(
            SendEvents::resolve(None, Some(&off), &input),
            SendEvents::Disabled
        );
        input.touchpad.disabled_on_external_mouse = true;
        assert_eq!(
            SendEvents::resolve(pad, None, &input),
            SendEvents::DisabledOnExternalMouse
        );
        // Only touchpads go quiet for a mouse; a device's own word wins.
        let mouse = Some(PointerKind::Mouse);
        assert_eq!(
            SendEvents::resolve(mouse, None, &input),
            SendEvents::Enabled
        );
        assert_eq!(
            SendEvents::resolve(pad, Some(&on), &input),
            SendEvents::Enabled
        );
    }

    #[test]
    fn stylus_buttons_click_right_and_middle() {
        assert_eq!(stylus_button(BTN_STYLUS), BTN_RIGHT);
        assert_eq!(stylus_button(BTN_STYLUS2), BTN_MIDDLE);
        // BTN_STYLUS3 and a pad's own buttons pass through.
        assert_eq!(stylus_button(0x149), 0x149);
        assert_eq!(stylus_button(BTN_LEFT), BTN_LEFT);
    }

    #[test]
    fn the_wanted_output_is_the_devices_then_its_kinds() {
        let mut input = InputConfig::default();
        assert_eq!(wanted_output(AbsoluteKind::Touch, None, &input), None);
        input.touch = AbsoluteConfig {
            map_to_output: Some(OutputName("eDP-1".into())),
        };
        input.tablet = AbsoluteConfig {
            map_to_output: Some(OutputName("DP-1".into())),
        };
        assert_eq!(
            wanted_output(AbsoluteKind::Touch, None, &input),
            Some("eDP-1")
        );
        assert_eq!(
            wanted_output(AbsoluteKind::Tablet, None, &input),
            Some("DP-1")
        );
        let own = DeviceConfig {
            map_to_output: Some(OutputName("HDMI-A-1".into())),
            ..DeviceConfig::default()
        };
        assert_eq!(
            wanted_output(AbsoluteKind::Touch, Some(&own), &input),
            Some("HDMI-A-1")
        );
        let unmapped = DeviceConfig::default();
        assert_eq!(
            wanted_output(AbsoluteKind::Touch, Some(&unmapped), &input),
            Some("eDP-1")
        );
    }
}
