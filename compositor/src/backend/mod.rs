//! Backends: where frames go and input comes from.

pub mod headless;

use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::output::Output;
use smithay::utils::{Physical, Size};

use headless::Headless;

#[allow(clippy::large_enum_variant)] // one instance per process
pub enum Backend {
    Headless(Headless),
    /// Placeholder while the state is being built or a backend is borrowed out.
    None,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Headless(h) => write!(f, "Headless({})", h.renderer_name()),
            Backend::None => f.write_str("None"),
        }
    }
}

/// A PNG-ready picture of one output.
#[derive(Debug, Clone)]
pub struct Capture {
    pub width: u32,
    pub height: u32,
    /// Tightly packed RGBA8, top row first.
    pub rgba: Vec<u8>,
}

impl Capture {
    /// The RGBA of one pixel.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * self.width + x) * 4) as usize;
        [
            self.rgba[i],
            self.rgba[i + 1],
            self.rgba[i + 2],
            self.rgba[i + 3],
        ]
    }
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Headless(_) => "headless",
            Backend::None => "none",
        }
    }

    pub fn renderer_name(&self) -> &'static str {
        match self {
            Backend::Headless(h) => h.renderer_name(),
            Backend::None => "none",
        }
    }

    pub fn dmabuf_formats(&self) -> crate::render::planes::FormatSet {
        match self {
            Backend::Headless(h) => h.dmabuf_formats(),
            Backend::None => Default::default(),
        }
    }

    pub fn main_device(&self) -> libc::dev_t {
        match self {
            Backend::Headless(h) => h.main_device(),
            Backend::None => 0,
        }
    }

    pub fn import_dmabuf(&mut self, dmabuf: &Dmabuf) -> Result<(), String> {
        match self {
            Backend::Headless(h) => h.import_dmabuf(dmabuf),
            Backend::None => Err("no renderer".into()),
        }
    }

    pub fn outputs(&self) -> Vec<Output> {
        match self {
            Backend::Headless(h) => h.outputs(),
            Backend::None => Vec::new(),
        }
    }
}

/// The size of an output's framebuffer: its mode with the output transform applied.
pub fn framebuffer_size(output: &Output) -> Option<Size<i32, Physical>> {
    let mode = output.current_mode()?;
    Some(output.current_transform().transform_size(mode.size))
}
