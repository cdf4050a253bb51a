//! The shell's own drawing: the focused window's border and the dimming of a window
//! behind its dialog. On GLES these run Tessera's `border` and `dim` shaders; on
//! Pixman the same shapes are drawn as solid fills, so both renderers show the same
//! pixels (the screenshot tests compare them).

use smithay::backend::renderer::element::{Element, Id, Kind, RenderElement};
use smithay::backend::renderer::gles::{
    GlesError, GlesFrame, GlesPixelProgram, GlesRenderer, Uniform,
};
use smithay::backend::renderer::pixman::{PixmanError, PixmanFrame, PixmanRenderer};
use smithay::backend::renderer::utils::CommitCounter;
use smithay::backend::renderer::{Color32F, Frame, Renderer};
use smithay::utils::{Buffer, Physical, Rectangle, Scale, Size, Transform};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// A frame `width` pixels wide along the inside of the element.
    Border { width: i32, rgba: [f32; 4] },
    /// Black at `strength` over the whole element.
    Dim { strength: f32 },
}

/// One decoration on one output, in physical pixels.
#[derive(Debug, Clone)]
pub struct Decoration {
    id: Id,
    geometry: Rectangle<i32, Physical>,
    shape: Shape,
    /// The GLES program for the shape; `None` on Pixman.
    program: Option<GlesPixelProgram>,
}

impl Decoration {
    /// `id` must be the same every frame for the same decoration, so that damage
    /// tracking sees an unchanged element and redraws nothing.
    pub fn new(
        id: Id,
        geometry: Rectangle<i32, Physical>,
        shape: Shape,
        program: Option<GlesPixelProgram>,
    ) -> Self {
        Self {
            id,
            geometry,
            shape,
            program,
        }
    }

    /// The pieces a solid-fill renderer draws, in element-local coordinates.
    fn solid_pieces(&self) -> (Vec<Rectangle<i32, Physical>>, Color32F) {
        let size = self.geometry.size;
        match self.shape {
            Shape::Border { width, rgba } => {
                let w = width.min(size.w / 2).min(size.h / 2).max(0);
                let r = |x, y, w, h| Rectangle::new((x, y).into(), (w, h).into());
                let pieces = vec![
                    r(0, 0, size.w, w),
                    r(0, size.h - w, size.w, w),
                    r(0, w, w, size.h - 2 * w),
                    r(size.w - w, w, w, size.h - 2 * w),
                ];
                let [cr, cg, cb, ca] = rgba;
                (pieces, Color32F::new(cr * ca, cg * ca, cb * ca, ca))
            }
            Shape::Dim { strength } => (
                vec![Rectangle::from_size(size)],
                Color32F::new(0.0, 0.0, 0.0, strength),
            ),
        }
    }

    fn draw_solid<F: Frame>(
        &self,
        frame: &mut F,
        dst: Rectangle<i32, Physical>,
        damage: &[Rectangle<i32, Physical>],
    ) -> Result<(), F::Error> {
        let (pieces, colour) = self.solid_pieces();
        for piece in pieces {
            if piece.is_empty() {
                continue;
            }
            // Damage arrives relative to `dst`; each piece wants it relative to itself.
            let local: Vec<_> = damage
                .iter()
                .filter_map(|d| d.intersection(piece))
                .map(|d| Rectangle::new(d.loc - piece.loc, d.size))
                .collect();
            if local.is_empty() {
                continue;
            }
            let at = Rectangle::new(dst.loc + piece.loc, piece.size);
            frame.draw_solid(at, &local, colour)?;
        }
        Ok(())
    }
}

impl Element for Decoration {
    fn id(&self) -> &Id {
        &self.id
    }

    fn current_commit(&self) -> CommitCounter {
        // Geometry and presence changes are damage by themselves; the shape of a
        // given decoration does not change while it exists.
        CommitCounter::default()
    }

    fn src(&self) -> Rectangle<f64, Buffer> {
        Rectangle::from_size(
            self.geometry
                .size
                .to_f64()
                .to_logical(1.0)
                .to_buffer(1.0, Transform::Normal),
        )
    }

    fn geometry(&self, _scale: Scale<f64>) -> Rectangle<i32, Physical> {
        self.geometry
    }

    fn kind(&self) -> Kind {
        Kind::Unspecified
    }
}

impl<R: DecorationRenderer> RenderElement<R> for Decoration {
    fn draw(
        &self,
        frame: &mut R::Frame<'_, '_>,
        src: Rectangle<f64, Buffer>,
        dst: Rectangle<i32, Physical>,
        damage: &[Rectangle<i32, Physical>],
        _opaque_regions: &[Rectangle<i32, Physical>],
    ) -> Result<(), R::Error> {
        R::draw_decoration(frame, self, src, dst, damage)
    }
}

/// Renderers that can draw a [`Decoration`]; lets the element list stay generic.
pub trait DecorationRenderer: Renderer + Sized {
    /// The shell's programs on this renderer, if it has any.
    fn decoration_programs(programs: Option<&super::shaders::Programs>) -> DecorationPrograms;

    fn draw_decoration(
        frame: &mut Self::Frame<'_, '_>,
        decoration: &Decoration,
        src: Rectangle<f64, Buffer>,
        dst: Rectangle<i32, Physical>,
        damage: &[Rectangle<i32, Physical>],
    ) -> Result<(), Self::Error>;
}

/// The programs decorations of each shape use on one renderer.
#[derive(Debug, Clone, Default)]
pub struct DecorationPrograms {
    pub border: Option<GlesPixelProgram>,
    pub dim: Option<GlesPixelProgram>,
}

impl DecorationPrograms {
    pub fn for_shape(&self, shape: &Shape) -> Option<GlesPixelProgram> {
        match shape {
            Shape::Border { .. } => self.border.clone(),
            Shape::Dim { .. } => self.dim.clone(),
        }
    }
}

impl DecorationRenderer for GlesRenderer {
    fn decoration_programs(programs: Option<&super::shaders::Programs>) -> DecorationPrograms {
        programs.map_or_else(DecorationPrograms::default, |p| DecorationPrograms {
            border: Some(p.border.clone()),
            dim: Some(p.dim.clone()),
        })
    }

    fn draw_decoration(
        frame: &mut GlesFrame<'_, '_>,
        d: &Decoration,
        src: Rectangle<f64, Buffer>,
        dst: Rectangle<i32, Physical>,
        damage: &[Rectangle<i32, Physical>],
    ) -> Result<(), GlesError> {
        let Some(program) = &d.program else {
            return d.draw_solid(frame, dst, damage);
        };
        let size: Size<i32, Buffer> = (dst.size.w, dst.size.h).into();
        let uniforms = match d.shape {
            Shape::Border { width, rgba } => vec![
                Uniform::new("colour", rgba),
                Uniform::new("width", width as f32),
            ],
            Shape::Dim { strength } => vec![Uniform::new("strength", strength)],
        };
        frame.render_pixel_shader_to(program, src, dst, size, Some(damage), 1.0, &uniforms)
    }
}

impl DecorationRenderer for PixmanRenderer {
    fn decoration_programs(_: Option<&super::shaders::Programs>) -> DecorationPrograms {
        DecorationPrograms::default()
    }

    fn draw_decoration(
        frame: &mut PixmanFrame<'_, '_>,
        d: &Decoration,
        _src: Rectangle<f64, Buffer>,
        dst: Rectangle<i32, Physical>,
        damage: &[Rectangle<i32, Physical>],
    ) -> Result<(), PixmanError> {
        d.draw_solid(frame, dst, damage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_border_is_four_pieces_that_tile_the_frame() {
        let d = Decoration::new(
            Id::new(),
            Rectangle::new((10, 10).into(), (100, 50).into()),
            Shape::Border {
                width: 3,
                rgba: [1.0, 0.0, 0.0, 1.0],
            },
            None,
        );
        let (pieces, colour) = d.solid_pieces();
        let area: i32 = pieces.iter().map(|p| p.size.w * p.size.h).sum();
        assert_eq!(area, 100 * 50 - 94 * 44);
        for (i, a) in pieces.iter().enumerate() {
            for b in &pieces[i + 1..] {
                assert!(!a.overlaps(*b), "{a:?} overlaps {b:?}");
            }
        }
        assert!(colour.is_opaque());
    }

    #[test]
    fn a_border_wider_than_the_window_fills_it() {
        let d = Decoration::new(
            Id::new(),
            Rectangle::new((0, 0).into(), (10, 10).into()),
            Shape::Border {
                width: 40,
                rgba: [1.0, 1.0, 1.0, 1.0],
            },
            None,
        );
        let (pieces, _) = d.solid_pieces();
        let area: i32 = pieces
            .iter()
            .map(|p| p.size.w.max(0) * p.size.h.max(0))
            .sum();
        assert_eq!(area, 100);
    }
}
