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
pub struct Args {
    /// Which backend drives the outputs.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Renderer for the headless backend.
    #[arg(long, value_enum, default_value_t = Renderer::Pixman)]
    pub renderer: Renderer,
    /// Virtual outputs for the headless backend, e.g. `1920x1080@60,1280x720`.
    #[arg(long, value_delimiter = ',', default_value = "1920x1080@60")]
    pub outputs: Vec<OutputSpec>,
    /// Path to compositor.toml.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
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
}
