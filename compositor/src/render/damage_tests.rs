//! The tracker against the one answer that is certainly right: every frame
//! it draws into an old buffer must be pixel for pixel the frame drawn whole
//! into a blank one. Scenes are random (seeded) stacks of translucent and
//! opaque elements that move, change, restack, appear and go.

use smithay::backend::allocator::Fourcc;
use smithay::backend::renderer::element::Kind;
use smithay::backend::renderer::element::memory::{
    MemoryRenderBuffer, MemoryRenderBufferRenderElement,
};
use smithay::backend::renderer::element::render_elements;
use smithay::backend::renderer::element::solid::{SolidColorBuffer, SolidColorRenderElement};
use smithay::backend::renderer::pixman::PixmanRenderer;
use smithay::backend::renderer::{Bind, Offscreen};
use smithay::reexports::pixman::Image;
use smithay::utils::{Buffer, Point, Rectangle};

use super::*;

render_elements! {
    TestElement<=PixmanRenderer>;
    Solid = SolidColorRenderElement,
    Memory = MemoryRenderBufferRenderElement<PixmanRenderer>,
}

const W: i32 = 96;
const H: i32 = 64;

/// xorshift64: a fixed seed gives the same scenes on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: i32) -> i32 {
        (self.next() % n.max(1) as u64) as i32
    }
    fn colour(&mut self) -> [f32; 4] {
        let alpha = if self.below(2) == 0 {
            1.0
        } else {
            0.25 + 0.125 * self.below(5) as f32
        };
        // Premultiplied, as the renderers take it.
        let c = |r: &mut Rng| alpha * (r.below(5) as f32 / 4.0);
        [c(self), c(self), c(self), alpha]
    }
}

enum Content {
    Solid(SolidColorBuffer),
    /// The buffer and its width and height.
    Memory(MemoryRenderBuffer, (i32, i32)),
}

struct Layer {
    content: Content,
    at: Point<i32, Physical>,
    alpha: f32,
    shown: bool,
}

struct Scene {
    layers: Vec<Layer>,
}

impl Scene {
    fn new(rng: &mut Rng) -> Self {
        let mut layers = Vec::new();
        for i in 0..7 {
            let (w, h) = (8 + rng.below(40), 8 + rng.below(30));
            let content = if i % 3 == 0 {
                let mut buffer =
                    MemoryRenderBuffer::new(Fourcc::Argb8888, (w, h), 1, Transform::Normal, None);
                paint(rng, &mut buffer, w, Rectangle::from_size((w, h).into()));
                Content::Memory(buffer, (w, h))
            } else {
                Content::Solid(SolidColorBuffer::new((w, h), rng.colour()))
            };
            layers.push(Layer {
                content,
                at: (rng.below(W + 20) - 10, rng.below(H + 20) - 10).into(),
                alpha: 1.0,
                shown: true,
            });
        }
        Self { layers }
    }

    /// One to three random changes; sometimes none.
    fn change(&mut self, rng: &mut Rng) {
        for _ in 0..rng.below(4) {
            let n = self.layers.len() as i32;
            let i = rng.below(n) as usize;
            match rng.below(7) {
                0 => self.layers[i].at = (rng.below(W + 20) - 10, rng.below(H + 20) - 10).into(),
                1 => {
                    let j = rng.below(n) as usize;
                    self.layers.swap(i, j);
                }
                2 => self.layers[i].shown = !self.layers[i].shown,
                3 => self.layers[i].alpha = [1.0, 0.5, 0.75][rng.below(3) as usize],
                // A client may mark a part it made opaque, and unmark it
                // later with no damage.
                4 => {
                    if let Content::Memory(buffer, (w, h)) = &mut self.layers[i].content {
                        let part = Rectangle::new((0, 0).into(), (*w / 2, *h).into());
                        if rng.below(2) == 0 {
                            paint_opaque(rng, buffer, *w, part);
                            buffer.render().update_opaque_regions(Some(vec![part]));
                        } else {
                            buffer.render().update_opaque_regions(None);
                        }
                    }
                }
                _ => match &mut self.layers[i].content {
                    Content::Solid(buffer) => buffer.set_color(rng.colour()),
                    Content::Memory(buffer, (w, h)) => {
                        let (w, h) = (*w, *h);
                        let x = rng.below(w);
                        let y = rng.below(h);
                        let part = Rectangle::new(
                            (x, y).into(),
                            (1 + rng.below(w - x), 1 + rng.below(h - y)).into(),
                        );
                        paint(rng, buffer, w, part);
                    }
                },
            }
        }
    }

    /// Front to back (the first layer in front), as the tracker takes them.
    fn elements(&self, renderer: &mut PixmanRenderer) -> Vec<TestElement> {
        let mut out = Vec::new();
        for layer in self.layers.iter().filter(|l| l.shown) {
            out.push(match &layer.content {
                Content::Solid(buffer) => TestElement::Solid(SolidColorRenderElement::from_buffer(
                    buffer,
                    layer.at,
                    1.0,
                    layer.alpha,
                    Kind::Unspecified,
                )),
                Content::Memory(buffer, _) => TestElement::Memory(
                    MemoryRenderBufferRenderElement::from_buffer(
                        renderer,
                        layer.at.to_f64(),
                        buffer,
                        Some(layer.alpha),
                        None,
                        None,
                        Kind::Unspecified,
                    )
                    .expect("import"),
                ),
            });
        }
        out
    }
}

fn paint_opaque(
    rng: &mut Rng,
    buffer: &mut MemoryRenderBuffer,
    width: i32,
    part: Rectangle<i32, Buffer>,
) {
    let colour = [
        rng.below(256) as u8,
        rng.below(256) as u8,
        rng.below(256) as u8,
        255,
    ];
    fill(buffer, width, part, colour);
}

/// Fills `part` of the buffer with one random premultiplied ARGB colour.
fn paint(rng: &mut Rng, buffer: &mut MemoryRenderBuffer, width: i32, part: Rectangle<i32, Buffer>) {
    let [r, g, b, a] = rng.colour().map(|c| (c * 255.0).round() as u8);
    fill(buffer, width, part, [b, g, r, a]);
}

/// Writes one little-endian ARGB pixel (B, G, R, A) all over `part`.
fn fill(buffer: &mut MemoryRenderBuffer, width: i32, part: Rectangle<i32, Buffer>, bgra: [u8; 4]) {
    let mut context = buffer.render();
    context
        .draw(|mem| {
            for y in part.loc.y..part.loc.y + part.size.h {
                for x in part.loc.x..part.loc.x + part.size.w {
                    let at = (y * width + x) as usize * 4;
                    mem[at..at + 4].copy_from_slice(&bgra);
                }
            }
            Ok::<_, ()>(vec![part])
        })
        .expect("paint");
}

fn pixels(renderer: &mut PixmanRenderer, image: &mut Image<'static, 'static>) -> Vec<u8> {
    let fb = renderer.bind(image).expect("bind");
    crate::render::read_rgba(renderer, &fb, (W, H).into()).expect("read back")
}

fn target(renderer: &mut PixmanRenderer) -> Image<'static, 'static> {
    renderer
        .create_buffer(Fourcc::Argb8888, (W, H).into())
        .expect("buffer")
}

const CLEAR: Color32F = Color32F::new(0.1, 0.2, 0.3, 1.0);

fn draw_whole(renderer: &mut PixmanRenderer, elements: &[TestElement]) -> Vec<u8> {
    let mut image = target(renderer);
    let mut tracker = DamageTracker::new();
    {
        let mut fb = renderer.bind(&mut image).expect("bind");
        let size = (W, H).into();
        tracker
            .render(
                renderer,
                &mut fb,
                size,
                1.0.into(),
                Transform::Normal,
                0,
                elements,
                CLEAR,
            )
            .expect("render");
    }
    pixels(renderer, &mut image)
}

/// Runs `frames` random frames into a swapchain of `buffers` buffers and
/// checks each against the whole frame.
fn check(seed: u64, buffers: usize, frames: usize) {
    let mut rng = Rng(seed);
    let mut renderer = PixmanRenderer::new().expect("pixman");
    let mut scene = Scene::new(&mut rng);
    let mut chain: Vec<(Image<'static, 'static>, usize)> =
        (0..buffers).map(|_| (target(&mut renderer), 0)).collect();
    let mut tracker = DamageTracker::new();
    for frame in 0..frames {
        scene.change(&mut rng);
        let elements = scene.elements(&mut renderer);
        let (image, last_drawn) = &mut chain[frame % buffers];
        let age = if *last_drawn == 0 {
            0
        } else {
            frame + 1 - *last_drawn
        };
        let damage = {
            let mut fb = renderer.bind(image).expect("bind");
            tracker
                .render(
                    &mut renderer,
                    &mut fb,
                    (W, H).into(),
                    1.0.into(),
                    Transform::Normal,
                    age,
                    &elements,
                    CLEAR,
                )
                .expect("render")
                .damage
        };
        *last_drawn = frame + 1;
        let got = pixels(&mut renderer, image);
        let want = draw_whole(&mut renderer, &elements);
        if let Some(at) = got.iter().zip(&want).position(|(g, w)| g != w) {
            let px = at / 4;
            panic!(
                "seed {seed}, {buffers} buffer(s), frame {frame}: pixel ({}, {}) is {:?}, \
                 drawn whole it is {:?}; damage {damage:?}",
                px as i32 % W,
                px as i32 / W,
                &got[px * 4..px * 4 + 4],
                &want[px * 4..px * 4 + 4],
            );
        }
    }
}

#[test]
fn a_kept_buffer_redrawn_by_damage_matches_a_whole_frame() {
    for seed in 1..=12u64 {
        check(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1, 40);
    }
}

#[test]
fn older_buffers_of_a_swapchain_get_the_damage_they_missed() {
    for seed in 1..=6u64 {
        check(seed.wrapping_mul(0x2545_f491_4f6c_dd1d), 2, 30);
        check(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 1, 3, 30);
    }
}

#[test]
fn an_unchanged_scene_draws_nothing_and_one_change_draws_only_it() {
    let mut rng = Rng(7);
    let mut renderer = PixmanRenderer::new().expect("pixman");
    let mut scene = Scene::new(&mut rng);
    let mut image = target(&mut renderer);
    let mut tracker = DamageTracker::new();
    let mut frame = |renderer: &mut PixmanRenderer, scene: &Scene| {
        let elements = scene.elements(renderer);
        let mut fb = renderer.bind(&mut image).expect("bind");
        tracker
            .render(
                renderer,
                &mut fb,
                (W, H).into(),
                1.0.into(),
                Transform::Normal,
                1,
                &elements,
                CLEAR,
            )
            .expect("render")
            .damage
    };
    assert_eq!(
        frame(&mut renderer, &scene),
        vec![Rect::from_size((W, H).into())]
    );
    assert!(frame(&mut renderer, &scene).is_empty());
    // A memory layer (index 0) gets a 2x3 change at (1, 1) of its buffer.
    scene.layers[0].at = (10, 20).into();
    let moved = frame(&mut renderer, &scene);
    assert!(!moved.is_empty());
    if let Content::Memory(buffer, (w, _)) = &mut scene.layers[0].content {
        paint(
            &mut rng,
            buffer,
            *w,
            Rectangle::new((1, 1).into(), (2, 3).into()),
        );
    }
    assert_eq!(
        frame(&mut renderer, &scene),
        vec![Rect::new((11, 21).into(), (2, 3).into())]
    );
    assert!(frame(&mut renderer, &scene).is_empty());
}

#[test]
fn damage_is_made_disjoint_without_losing_area() {
    let mut rng = Rng(99);
    for _ in 0..200 {
        let rects: Vec<Rect> = (0..1 + rng.below(12))
            .map(|_| {
                Rect::new(
                    (rng.below(30), rng.below(30)).into(),
                    (1 + rng.below(20), 1 + rng.below(20)).into(),
                )
            })
            .collect();
        let out = disjoint(rects.clone());
        let covered =
            |set: &[Rect], x: i32, y: i32| set.iter().filter(|r| r.contains((x, y))).count();
        for y in 0..50 {
            for x in 0..50 {
                let want = covered(&rects, x, y) > 0;
                let got = covered(&out, x, y);
                assert_eq!(got, usize::from(want), "({x}, {y}) of {rects:?} -> {out:?}");
            }
        }
    }
}
