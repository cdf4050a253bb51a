//! The IPC messages. One JSON object per line each way.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Version,
    Outputs,
    Windows,
    Clients,
    Planes,
    /// The seat: its input devices, the pointer and the fingers down.
    Inputs,
    Focus {
        id: u64,
    },
    Screenshot {
        output: Option<String>,
        path: String,
        /// Include the pointer.
        #[serde(default)]
        cursor: bool,
    },
    Type {
        text: String,
    },
    Key {
        combo: String,
    },
    PointerMove {
        x: f64,
        y: f64,
    },
    PointerClick {
        button: PointerButton,
    },
    /// A finger down (and a frame), on touch slot `slot`.
    TouchDown {
        #[serde(default)]
        slot: u32,
        x: f64,
        y: f64,
    },
    TouchMove {
        #[serde(default)]
        slot: u32,
        x: f64,
        y: f64,
    },
    TouchUp {
        #[serde(default)]
        slot: u32,
    },
    /// Down and up at one place.
    TouchTap {
        x: f64,
        y: f64,
    },
    Reload,
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PointerButton {
    Left,
    Right,
    Middle,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: impl Serialize) -> Self {
        Self {
            ok: true,
            error: None,
            data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
        }
    }

    pub fn err(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(message.into()),
            data: serde_json::Value::Null,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputInfo {
    pub name: String,
    pub width: i32,
    pub height: i32,
    pub refresh_mhz: i32,
    pub scale: f64,
    pub x: i32,
    pub y: i32,
    /// The area left for windows after layer-shell exclusive zones.
    pub usable: [i32; 4],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowInfo {
    pub id: u64,
    pub app_id: Option<String>,
    pub title: Option<String>,
    /// x, y, width, height in global logical coordinates; absent when minimized.
    pub geometry: Option<[i32; 4]>,
    pub focused: bool,
    pub maximized: bool,
    pub fullscreen: bool,
    pub minimized: bool,
    pub dialog: bool,
    pub parent: Option<u64>,
    /// The toplevel surface's protocol state, for telling a stalled client
    /// from a compositor that owes it an event.
    #[serde(default)]
    pub surface: Option<SurfaceInfo>,
}

/// What the compositor holds for a window's wl_surface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SurfaceInfo {
    /// Commits received since the surface was created.
    pub commits: u64,
    /// Of those, the commits that attached a new buffer.
    pub buffer_commits: u64,
    /// Milliseconds since the last commit.
    pub last_commit_ms: Option<u64>,
    /// wl_surface.frame callbacks committed and not yet answered with `done`.
    pub frame_callbacks_waiting: usize,
    /// xdg configures sent and not yet acknowledged.
    pub unacked_configures: usize,
    /// Whether the seat's keyboard focus is this surface.
    pub keyboard_focus: bool,
    /// The attached buffer's size in pixels.
    pub buffer: Option<[i32; 2]>,
}

/// The seat as `msg inputs` shows it, like sway's `get_inputs` and `get_seats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeatInfo {
    /// The devices the backend reads, in the order they appeared. Headless has
    /// none: its input comes through this IPC.
    pub devices: Vec<InputDeviceInfo>,
    /// Where the pointer is, in global logical coordinates.
    pub pointer: [f64; 2],
    /// The pointer buttons held down (evdev codes: 272 left, 273 right, 274
    /// middle), in the order pressed.
    pub buttons: Vec<u32>,
    /// The fingers down, by touch slot.
    pub touch: Vec<TouchPointInfo>,
}

/// One input device, as libinput names and classifies it, with the settings in
/// effect (absent where the device has no such setting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputDeviceInfo {
    pub name: String,
    /// The kernel's name for its event node (`event3`).
    pub sysname: String,
    /// What it can do: `keyboard`, `pointer`, `touch`, `tablet-tool`, `tablet-pad`,
    /// `gesture`, `switch`.
    pub capabilities: Vec<String>,
    /// For pointers, which config section applies: `touchpad` or `mouse`.
    pub kind: Option<String>,
    /// `built-in`, or `external` (USB, Bluetooth): what picks the output an
    /// absolute device spans when the config names none.
    pub placement: String,
    /// The config tables that set it, the last winning: `input.touchpad`,
    /// `input.device."Elan Touchpad"`.
    pub sections: Vec<String>,
    /// libinput's send-events mode in effect: `enabled`, `disabled`,
    /// `disabled-on-external-mouse`.
    pub send_events: String,
    /// For touch screens and absolute pointers, the output their range spans.
    pub output: Option<String>,
    pub tap: Option<bool>,
    pub natural_scroll: Option<bool>,
    pub accel_speed: Option<f64>,
    pub disable_while_typing: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TouchPointInfo {
    /// libinput's slot; none for a single-touch device.
    pub slot: Option<u32>,
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: String,
    pub backend: String,
    pub renderer: String,
    pub wayland_display: Option<String>,
    pub frames: u64,
    pub locked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_requests_default_to_the_first_finger() {
        let r: Request = serde_json::from_str(r#"{"cmd":"touch-down","x":1.5,"y":2}"#).unwrap();
        assert_eq!(
            r,
            Request::TouchDown {
                slot: 0,
                x: 1.5,
                y: 2.0
            }
        );
        let r: Request = serde_json::from_str(r#"{"cmd":"touch-up","slot":2}"#).unwrap();
        assert_eq!(r, Request::TouchUp { slot: 2 });
        let tap = Request::TouchTap { x: 3.0, y: 4.0 };
        let s = serde_json::to_string(&tap).unwrap();
        assert_eq!(s, r#"{"cmd":"touch-tap","x":3.0,"y":4.0}"#);
    }

    #[test]
    fn requests_round_trip_as_tagged_json() {
        let r = Request::Screenshot {
            output: None,
            path: "/tmp/a.png".into(),
            cursor: false,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"cmd":"screenshot","output":null,"path":"/tmp/a.png","cursor":false}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        // Older clients leave the pointer out.
        let old: Request =
            serde_json::from_str(r#"{"cmd":"screenshot","output":null,"path":"/tmp/a.png"}"#)
                .unwrap();
        assert_eq!(old, r);
        let r: Request =
            serde_json::from_str(r#"{"cmd":"pointer-click","button":"left"}"#).unwrap();
        assert_eq!(
            r,
            Request::PointerClick {
                button: PointerButton::Left
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"explode"}"#).is_err());
    }
}
