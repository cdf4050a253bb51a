//! Tessera's own GLES shaders.
//!
//! Every shader is written once and must compile as GLSL ES 1.00 (smithay links
//! its custom programs as `#version 100`) and as GLSL ES 3.00, with mediump
//! precision and no 64-bit types, because the targets include Mali, Adreno and
//! V3D. `compat.glsl` maps the 1.00 spellings onto 3.00. The tests run
//! glslangValidator on both versions and run every program on llvmpipe.

use smithay::backend::renderer::gles::{
    GlesPixelProgram, GlesRenderer, GlesTexProgram, UniformName, UniformType,
};

pub const COMPAT: &str = include_str!("shaders/compat.glsl");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShaderKind {
    /// A pixel shader: smithay gives it `v_coords`, `size` and `alpha`.
    Pixel,
    /// A texture shader: `tex`, `v_coords`, `alpha` and the NO_ALPHA define.
    Texture,
}

#[derive(Debug, Clone, Copy)]
pub struct ShaderSource {
    pub name: &'static str,
    pub kind: ShaderKind,
    pub body: &'static str,
}

pub const SHADERS: &[ShaderSource] = &[
    ShaderSource {
        name: "solid",
        kind: ShaderKind::Pixel,
        body: include_str!("shaders/solid.frag"),
    },
    ShaderSource {
        name: "dim",
        kind: ShaderKind::Pixel,
        body: include_str!("shaders/dim.frag"),
    },
    ShaderSource {
        name: "border",
        kind: ShaderKind::Pixel,
        body: include_str!("shaders/border.frag"),
    },
    ShaderSource {
        name: "surface",
        kind: ShaderKind::Texture,
        body: include_str!("shaders/surface.frag"),
    },
];

impl ShaderSource {
    /// The full source for a given `#version` line (`100` or `300 es`).
    pub fn with_version(&self, version: &str) -> String {
        format!("#version {version}\n{COMPAT}\n{}", self.body)
    }

    /// What smithay gets: pixel shaders without a version line (smithay adds
    /// `#version 100`), texture shaders with it and smithay's defines marker.
    pub fn runtime(&self) -> String {
        match self.kind {
            ShaderKind::Pixel => format!("{COMPAT}\n{}", self.body),
            ShaderKind::Texture => format!("#version 100\n//_DEFINES_\n{COMPAT}\n{}", self.body),
        }
    }
}

/// The compiled programs of a GLES renderer.
#[derive(Debug, Clone)]
pub struct Programs {
    pub solid: GlesPixelProgram,
    pub dim: GlesPixelProgram,
    pub border: GlesPixelProgram,
    pub surface: GlesTexProgram,
}

impl Programs {
    pub fn compile(renderer: &mut GlesRenderer) -> Result<Self, String> {
        let find = |name: &str| {
            SHADERS
                .iter()
                .find(|s| s.name == name)
                .map(ShaderSource::runtime)
                .unwrap_or_default()
        };
        let err = |name: &'static str| move |e| format!("shader `{name}` failed to compile: {e:?}");
        let solid = renderer
            .compile_custom_pixel_shader(
                find("solid"),
                &[UniformName::new("colour", UniformType::_4f)],
            )
            .map_err(err("solid"))?;
        let dim = renderer
            .compile_custom_pixel_shader(
                find("dim"),
                &[UniformName::new("strength", UniformType::_1f)],
            )
            .map_err(err("dim"))?;
        let border = renderer
            .compile_custom_pixel_shader(
                find("border"),
                &[
                    UniformName::new("colour", UniformType::_4f),
                    UniformName::new("width", UniformType::_1f),
                ],
            )
            .map_err(err("border"))?;
        let surface = renderer
            .compile_custom_texture_shader(
                find("surface"),
                &[UniformName::new("opacity", UniformType::_1f)],
            )
            .map_err(err("surface"))?;
        Ok(Self {
            solid,
            dim,
            border,
            surface,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn every_shader_validates_as_es100_and_es300() {
        let dir = tempfile::tempdir().unwrap();
        for shader in SHADERS {
            for version in ["100", "300 es"] {
                let path = dir.path().join(format!("{}.frag", shader.name));
                std::fs::write(&path, shader.with_version(version)).unwrap();
                let out = Command::new("glslangValidator")
                    .arg("-S")
                    .arg("frag")
                    .arg(&path)
                    .output()
                    .expect("glslangValidator (glslang-tools) runs");
                assert!(
                    out.status.success(),
                    "{} as GLSL ES {version}:\n{}",
                    shader.name,
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
    }

    #[test]
    fn validator_rejects_a_broken_shader() {
        // Guards the test above against a validator that accepts anything.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.frag");
        std::fs::write(
            &path,
            "#version 100\nvoid main() { gl_FragColor = nope; }\n",
        )
        .unwrap();
        let ok = Command::new("glslangValidator")
            .args(["-S", "frag"])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(!ok);
    }

    #[test]
    fn shaders_use_mediump_and_no_64_bit_types() {
        assert!(COMPAT.contains("precision mediump float;"));
        for shader in SHADERS {
            for banned in ["double", "dvec", "dmat", "int64", "highp"] {
                assert!(
                    !shader.body.contains(banned),
                    "{} uses {banned}",
                    shader.name
                );
            }
        }
    }
}
