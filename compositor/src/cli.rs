//! Command line options.

use std::fmt;
use std::str::FromStr;

use clap::{Parser, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tessera, a Wayland compositor for appliance sessions"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Which backend drives the outputs.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Renderer for the headless backend.
    #[arg(long, value_enum, default_value_t = Renderer::Pixman)]
    pub renderer: Renderer,
    /// Virtual outputs for the headless backend, e.g. `1920x1080@60,1280x720`.
    #[arg(long, value_delimiter = ',', default_value = "1920x1080@60")]
    pub outputs: Vec<OutputSpec>,
    /// Path to compositor.toml (default: the first of
    /// ~/.config/tessera/compositor.toml, $XDG_CONFIG_DIRS/tessera/compositor.toml
    /// and /usr/share/tessera/compositor.toml, else the shipped defaults).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Wayland socket name (default: the first free wayland-N).
    #[arg(long)]
    pub socket: Option<String>,
    /// Do not run the autostart commands from the config.
    #[arg(long)]
    pub no_autostart: bool,
    /// Extra command to start once the session is up (repeatable).
    #[arg(long = "spawn", value_name = "CMD")]
    pub spawn: Vec<String>,
    /// Write a PNG of the first output after `--screenshot-after` seconds.
    #[arg(long, value_name = "FILE.png")]
    pub screenshot: Option<std::path::PathBuf>,
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
    pub screenshot_after: f64,
    /// Headless: plan frames against this simulated plane table (intel, amd,
    /// adreno, vc4, mali, nvidia, virtio-gpu, or a FILE.toml of planes) and
    /// report it in `msg planes`.
    #[arg(long, visible_alias = "planes", value_name = "NAME|FILE.toml")]
    pub plane_table: Option<String>,
    /// Quit after this many seconds (for scripts).
    #[arg(long, value_name = "SECONDS")]
    pub exit_after: Option<f64>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Talk to a running tessera over its IPC socket.
    Msg(MsgArgs),
    /// Validate a compositor.toml; exits 78 (EX_CONFIG) with file:line:key on errors.
    CheckConfig {
        file: std::path::PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the shipped default compositor.toml.
    DefaultConfig,
}

#[derive(Debug, clap::Args)]
pub struct MsgArgs {
    /// IPC socket (default: $TESSERA_SOCKET, else the one for $WAYLAND_DISPLAY).
    #[arg(long)]
    pub socket: Option<std::path::PathBuf>,
    /// Print the raw JSON answer.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub request: MsgCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum MsgCommand {
    /// Version, backend, renderer and frame count.
    Version,
    /// The outputs with their modes, positions and usable areas.
    Outputs,
    /// The windows, front to back by focus.
    Windows,
    /// The connected clients: pid, and for sandboxed ones the security context's
    /// engine, app id and instance id, and the globals they were denied.
    Clients,
    /// Per output: which plane each element of the last frame took (primary,
    /// overlay, cursor) or why it was composited, counters since start, and
    /// the recent frames' render times (the first frame apart).
    Planes,
    /// The seat: input devices (name, event node, capabilities, built in or
    /// external, the config tables that apply and the settings in effect, and
    /// for touch screens and tablets the output they span), where the pointer
    /// is, and the fingers down.
    Inputs,
    /// Focus (and unminimize) a window by id.
    Focus { id: u64 },
    /// Write a PNG of what an output shows, read back from the renderer.
    Screenshot {
        #[arg(long)]
        output: Option<String>,
        /// Include the pointer (left out by default, as grim does).
        #[arg(long)]
        cursor: bool,
        file: std::path::PathBuf,
    },
    /// Type text into the focused window (`\n` is Return).
    Type { text: String },
    /// Press a key combo such as `Super+Return`; bindings apply.
    Key { combo: String },
    /// Move or click the pointer.
    #[command(subcommand)]
    Pointer(PointerCommand),
    /// Touch the screen: a tap, or a finger down, moved and lifted.
    #[command(subcommand)]
    Touch(TouchCommand),
    /// Reload compositor.toml; the old config stays on error.
    Reload,
    /// Quit the compositor.
    Quit,
}

#[derive(Debug, clap::Subcommand)]
pub enum PointerCommand {
    /// Move to global logical coordinates.
    Move { x: f64, y: f64 },
    /// Press and release a button.
    Click {
        #[arg(value_enum, default_value_t = crate::ipc::proto::PointerButton::Left)]
        button: crate::ipc::proto::PointerButton,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum TouchCommand {
    /// A finger down and up at global logical coordinates.
    Tap { x: f64, y: f64 },
    /// A finger down at global logical coordinates.
    Down {
        x: f64,
        y: f64,
        /// Which finger (touch slot).
        #[arg(long, default_value_t = 0)]
        slot: u32,
    },
    /// A finger that is down moves; it stays with the surface it came down on.
    Move {
        x: f64,
        y: f64,
        #[arg(long, default_value_t = 0)]
        slot: u32,
    },
    /// A finger lifts.
    Up {
        #[arg(long, default_value_t = 0)]
        slot: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Auto,
    Kms,
    Nested,
    Headless,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Renderer {
    Pixman,
    Gles,
}

/// A virtual output: `WIDTHxHEIGHT[@REFRESH]`, refresh in Hz (default 60).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputSpec {
    pub width: u32,
    pub height: u32,
    pub refresh_hz: f64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid output `{spec}`: {why} (expected WIDTHxHEIGHT[@HZ], e.g. 1920x1080@60)")]
pub struct OutputSpecError {
    spec: String,
    why: &'static str,
}

impl FromStr for OutputSpec {
    type Err = OutputSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| OutputSpecError {
            spec: s.to_owned(),
            why,
        };
        let (size, refresh) = match s.split_once('@') {
            Some((size, hz)) => (
                size,
                hz.parse::<f64>().map_err(|_| err("bad refresh rate"))?,
            ),
            None => (s, 60.0),
        };
        let (w, h) = size.split_once('x').ok_or_else(|| err("missing `x`"))?;
        let width: u32 = w.parse().map_err(|_| err("bad width"))?;
        let height: u32 = h.parse().map_err(|_| err("bad height"))?;
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            return Err(err("size out of range 1..=16384"));
        }
        if !(1.0..=1000.0).contains(&refresh) {
            return Err(err("refresh out of range 1..=1000 Hz"));
        }
        Ok(OutputSpec {
            width,
            height,
            refresh_hz: refresh,
        })
    }
}

impl fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}@{}", self.width, self.height, self.refresh_hz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs_parse() {
        let o: OutputSpec = "1920x1080@60".parse().unwrap();
        assert_eq!((o.width, o.height, o.refresh_hz), (1920, 1080, 60.0));
        let o: OutputSpec = "1280x720".parse().unwrap();
        assert_eq!(o.refresh_hz, 60.0);
        assert!("1280".parse::<OutputSpec>().is_err());
        assert!("0x720".parse::<OutputSpec>().is_err());
        assert!("1280x720@0".parse::<OutputSpec>().is_err());
        assert!("axb".parse::<OutputSpec>().is_err());
    }

    #[test]
    fn outputs_flag_takes_a_list() {
        let a = Args::try_parse_from([
            "tessera",
            "--backend",
            "headless",
            "--outputs",
            "1920x1080@60,1280x720",
        ])
        .unwrap();
        assert_eq!(a.backend, Backend::Headless);
        assert_eq!(a.outputs.len(), 2);
        assert!(Args::try_parse_from(["tessera", "--outputs", "big"]).is_err());
    }

    #[test]
    fn planes_is_another_name_for_plane_table() {
        let a = Args::try_parse_from(["tessera", "--planes", "gpu.toml"]).unwrap();
        assert_eq!(a.plane_table.as_deref(), Some("gpu.toml"));
    }
}
