//! A plane capability table written as TOML (`--plane-table FILE.toml`), for a
//! GPU the built-in tables do not cover, e.g. one copied from a drmdb dump:
//!
//! ```toml
//! driver = "i915"              # picks the quirks (nvidia-drm: no overlays)
//! [[plane]]
//! id = 31
//! kind = "primary"             # primary, overlay or cursor
//! formats = ["XR24:linear", "XR24:0x0100000000000001", "NV12:invalid"]
//! rotations = ["rotate-0", "rotate-180"]   # default: rotate-0
//! zpos = 0                     # optional
//! scaling = false              # default: overlays scale, others do not
//! alpha = false                # default: all but the primary blend
//! max-size = [256, 256]        # optional; a cursor plane's size
//! ```

use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::{
    DeviceCaps, FormatSet, MOD_INVALID, MOD_LINEAR, PlaneCaps, PlaneFormat, PlaneKind, Rotations,
};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableFile {
    pub driver: String,
    #[serde(rename = "plane")]
    pub planes: Vec<PlaneEntry>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlaneEntry {
    pub id: u32,
    pub kind: PlaneKind,
    pub formats: Vec<FormatName>,
    #[serde(default)]
    pub zpos: Option<u32>,
    #[serde(default)]
    pub scaling: Option<bool>,
    #[serde(default)]
    pub alpha: Option<bool>,
    #[serde(default)]
    pub rotations: Option<Vec<RotationName>>,
    #[serde(default)]
    pub max_size: Option<(u32, u32)>,
}

/// `FOURCC:MODIFIER`: a four-character code and `linear`, `invalid` or a
/// hexadecimal modifier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FormatName(pub PlaneFormat);

impl FromStr for FormatName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}` is not FOURCC:MODIFIER (e.g. XR24:linear, NV12:0x0100000000000002)");
        let (code, modifier) = s.split_once(':').ok_or_else(bad)?;
        let code: [u8; 4] = code
            .as_bytes()
            .try_into()
            .ok()
            .filter(|c: &[u8; 4]| c.iter().all(u8::is_ascii_graphic) || c.ends_with(b" "))
            .ok_or_else(bad)?;
        let modifier = match modifier {
            "linear" => MOD_LINEAR,
            "invalid" => MOD_INVALID,
            hex => hex
                .strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or_else(bad)?,
        };
        Ok(FormatName(PlaneFormat {
            fourcc: u32::from_le_bytes(code),
            modifier,
        }))
    }
}

impl<'de> Deserialize<'de> for FormatName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A `rotation` property entry name, as the kernel spells it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotationName(pub u8);

impl<'de> Deserialize<'de> for RotationName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Rotations::bit_named(&name).map(RotationName).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown rotation `{name}`, expected rotate-0, rotate-90, rotate-180, rotate-270, reflect-x or reflect-y"
            ))
        })
    }
}

impl TableFile {
    /// The capability table the policy plans against.
    pub fn caps(&self) -> DeviceCaps {
        let planes = self
            .planes
            .iter()
            .map(|p| PlaneCaps {
                id: p.id,
                kind: p.kind,
                formats: p.formats.iter().map(|f| f.0).collect::<FormatSet>(),
                zpos: p.zpos,
                scaling: p.scaling.unwrap_or(p.kind == PlaneKind::Overlay),
                alpha: p.alpha.unwrap_or(p.kind != PlaneKind::Primary),
                rotations: Rotations(
                    p.rotations
                        .as_ref()
                        .map_or(Rotations::ROTATE_0, |r| r.iter().fold(0, |m, b| m | b.0)),
                ),
                max_size: p.max_size,
            })
            .collect();
        DeviceCaps::new(&self.driver, planes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tables::*;
    use super::*;
    use std::path::Path;

    const TABLE: &str = r#"
driver = "nvidia-drm"

[[plane]]
id = 31
kind = "primary"
formats = ["XR24:linear", "XR24:0x0100000000000001"]
rotations = ["rotate-0", "rotate-180"]

[[plane]]
id = 40
kind = "overlay"
formats = ["NV12:invalid"]
zpos = 2

[[plane]]
id = 50
kind = "cursor"
formats = ["AR24:linear"]
max-size = [64, 64]
"#;

    fn parse(text: &str) -> Result<TableFile, tessera_config::ConfigError> {
        tessera_config::parse(text, Path::new("gpu.toml"))
    }

    #[test]
    fn a_table_file_gives_the_planes_it_lists_and_the_drivers_quirks() {
        let caps = parse(TABLE).unwrap().caps();
        assert!(caps.quirks.no_overlays, "nvidia-drm keeps its quirk");
        let primary = &caps.planes[0];
        assert_eq!(primary.kind, PlaneKind::Primary);
        assert!(primary.formats.contains(&PlaneFormat {
            fourcc: XRGB8888,
            modifier: I915_X_TILED
        }));
        assert!(primary.rotations.supports(Rotations::ROTATE_180));
        assert!(!primary.rotations.supports(Rotations::ROTATE_90));
        assert!(!primary.scaling && !primary.alpha);
        let overlay = &caps.planes[1];
        assert_eq!(overlay.zpos, Some(2));
        assert!(overlay.scaling && overlay.alpha);
        assert_eq!(overlay.rotations, Rotations(Rotations::ROTATE_0));
        assert!(overlay.formats.contains(&PlaneFormat {
            fourcc: NV12,
            modifier: MOD_INVALID
        }));
        assert_eq!(caps.planes[2].max_size, Some((64, 64)));
    }

    #[test]
    fn a_bad_format_or_rotation_names_the_line_and_key() {
        let e = parse(
            "driver = \"x\"\n[[plane]]\nid = 1\nkind = \"primary\"\nformats = [\"XR24-linear\"]\n",
        )
        .unwrap_err();
        let loc = e.location().unwrap();
        assert_eq!(loc.line, 5);
        assert_eq!(loc.key, "plane[0].formats[0]");
        assert!(e.to_string().contains("FOURCC:MODIFIER"), "{e}");
        let e = parse(
            "driver = \"x\"\n[[plane]]\nid = 1\nkind = \"primary\"\nformats = []\nrotations = [\"rotate-45\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.location().unwrap().line, 6);
        assert!(
            e.to_string().contains("unknown rotation `rotate-45`"),
            "{e}"
        );
        let e = parse("driver = \"x\"\n[[plane]]\nid = 1\nkind = \"underlay\"\nformats = []\n")
            .unwrap_err();
        assert_eq!(e.location().unwrap().line, 4);
    }
}
