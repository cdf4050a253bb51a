//! Screen pictures from QEMU's `screendump` (PNG), and the checks made on them.

use std::collections::HashMap;
use std::path::Path;

use crate::{Result, RigError};

/// An RGB picture, top row first.
#[derive(Debug, Clone)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Picture {
    pub fn read_png(path: &Path) -> Result<Picture> {
        let file = std::fs::File::open(path)
            .map_err(|e| RigError::Failed(format!("{}: {e}", path.display())))?;
        let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder
            .read_info()
            .map_err(|e| RigError::Failed(format!("{}: {e}", path.display())))?;
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader
            .next_frame(&mut buf)
            .map_err(|e| RigError::Failed(format!("{}: {e}", path.display())))?;
        let channels = info.color_type.samples();
        if channels < 3 {
            return Err(RigError::Failed(format!(
                "{}: a grey picture, not a screen",
                path.display()
            )));
        }
        let rgb = buf[..info.buffer_size()]
            .chunks_exact(channels)
            .flat_map(|px| [px[0], px[1], px[2]])
            .collect();
        Ok(Picture {
            width: info.width,
            height: info.height,
            rgb,
        })
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// The most common colour and the share of pixels that have it.
    pub fn dominant(&self) -> ([u8; 3], f64) {
        let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
        for px in self.rgb.chunks_exact(3) {
            *counts.entry([px[0], px[1], px[2]]).or_default() += 1;
        }
        let total = (self.rgb.len() / 3).max(1);
        counts
            .into_iter()
            .max_by_key(|(c, n)| (*n, *c))
            .map_or(([0; 3], 0.0), |(c, n)| (c, n as f64 / total as f64))
    }

    /// The share of pixels further than `tolerance` (per channel) from `colour`.
    pub fn share_unlike(&self, colour: [u8; 3], tolerance: u8) -> f64 {
        let total = (self.rgb.len() / 3).max(1);
        let unlike = self
            .rgb
            .chunks_exact(3)
            .filter(|px| {
                px.iter()
                    .zip(colour)
                    .any(|(a, b)| a.abs_diff(b) > tolerance)
            })
            .count();
        unlike as f64 / total as f64
    }

    /// The smallest rectangle `(x0, y0, x1, y1)`, inclusive, holding every pixel
    /// further than `tolerance` from `colour`; `None` when there is none.
    pub fn bounds_unlike(&self, colour: [u8; 3], tolerance: u8) -> Option<(u32, u32, u32, u32)> {
        let mut bounds: Option<(u32, u32, u32, u32)> = None;
        for (i, px) in self.rgb.chunks_exact(3).enumerate() {
            if !px
                .iter()
                .zip(colour)
                .any(|(a, b)| a.abs_diff(b) > tolerance)
            {
                continue;
            }
            let (x, y) = (i as u32 % self.width, i as u32 / self.width);
            bounds = Some(match bounds {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
        bounds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominant_colour_and_the_rest() {
        let mut rgb = Vec::new();
        for i in 0..100u8 {
            rgb.extend(if i < 90 {
                [0x20, 0x30, 0x40]
            } else {
                [0xff, 0xff, i]
            });
        }
        let p = Picture {
            width: 10,
            height: 10,
            rgb,
        };
        assert_eq!(p.dominant(), ([0x20, 0x30, 0x40], 0.9));
        assert!((p.share_unlike([0x21, 0x30, 0x40], 2) - 0.1).abs() < 1e-9);
        assert_eq!(p.pixel(9, 9), [0xff, 0xff, 99]);
        // The last ten pixels are the bottom row.
        assert_eq!(p.bounds_unlike([0x20, 0x30, 0x40], 2), Some((0, 9, 9, 9)));
        assert_eq!(p.bounds_unlike([0xff, 0xff, 0x5c], 0xfe), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        {
            let f = std::fs::File::create(&path).unwrap();
            let mut enc = png::Encoder::new(f, 10, 10);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()
                .unwrap()
                .write_image_data(&p.rgb)
                .unwrap();
        }
        let back = Picture::read_png(&path).unwrap();
        assert_eq!((back.width, back.height, back.rgb), (10, 10, p.rgb));
    }
}
