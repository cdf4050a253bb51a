//! libinput devices: `[input.touchpad]` and `[input.mouse]` applied to each
//! pointer when it appears and again on every reload, and what `msg inputs`
//! says of them.

use smithay::reexports::input::{self as libinput, DeviceCapability};
use tessera_config::compositor::InputConfig;

use crate::ipc::proto::InputDeviceInfo;

/// libinput has no device class: a pointer that can tap is a touchpad (sway and
/// niri tell them apart the same way), any other pointer counts as a mouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointerKind {
    Touchpad,
    Mouse,
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

/// Sets a pointer up from the config. Each setting is tried only where the
/// device has it (an absolute tablet has no acceleration, a mouse no tapping);
/// a refusal is logged and the rest still applies.
pub fn configure(device: &mut libinput::Device, input: &InputConfig) {
    let Some(kind) = pointer_kind(device) else {
        return;
    };
    let want = PointerSettings::for_kind(kind, input);
    let mut refused = Vec::new();
    // Only a touchpad wants tapping, and being one means it can tap.
    if let Some(tap) = want.tap
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
    if !refused.is_empty() {
        tracing::warn!(name = device.name(), ?refused, "libinput refused settings");
    }
}

/// What `msg inputs` says of a device, read back from libinput, so it shows
/// what is in effect rather than what was asked for.
pub fn describe(device: &libinput::Device) -> InputDeviceInfo {
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
    InputDeviceInfo {
        name: device.name().to_owned(),
        sysname: device.sysname().to_owned(),
        capabilities,
        kind: kind.map(|k| match k {
            PointerKind::Touchpad => "touchpad".to_owned(),
            PointerKind::Mouse => "mouse".to_owned(),
        }),
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
    use tessera_config::compositor::AccelSpeed;

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
}
