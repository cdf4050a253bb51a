//! libinput devices into the seat. The bindings, focus and lock rules live in
//! `crate::input`; this only translates device events into its calls.

use smithay::backend::input::{
    AbsolutePositionEvent, Axis, AxisSource, ButtonState, Event, InputBackend, InputEvent,
    KeyState, KeyboardKeyEvent, PointerAxisEvent, PointerButtonEvent, PointerMotionEvent,
    TabletToolButtonEvent, TabletToolTipEvent, TabletToolTipState, TouchEvent,
};
use smithay::backend::libinput::LibinputInputBackend;
use smithay::input::pointer::AxisFrame;
use smithay::reexports::input as libinput;
use smithay::utils::{Logical, Point, Rectangle};

use super::devices;
use crate::state::Tessera;

impl Tessera {
    /// Reads everything libinput has queued. This, not smithay's event source,
    /// reads libinput, because that source reads only when libinput's fd wakes,
    /// and libinput queues events that never wake it: the devices found when
    /// the seat is taken, and the devices gone (with every key and button
    /// released) when it suspends for a VT switch. Those waited for the next
    /// key or motion, so `msg inputs` showed no devices on an untouched session
    /// and a device was set up from the config only once it was first used.
    pub(super) fn drain_libinput(&mut self) {
        let Some(mut libinput) = self.kms().map(|k| k.libinput.clone()) else {
            return;
        };
        if let Err(e) = libinput.dispatch() {
            tracing::warn!(%e, "libinput dispatch");
        }
        let mut any = false;
        for event in &mut libinput {
            if let Some(event) = smithay_event(event) {
                self.process_libinput(event);
                any = true;
            }
        }
        // Whatever it was (a device, a key the shell took), one look at the
        // screen costs less than a change that never shows.
        if any {
            self.needs_redraw = true;
        }
    }

    pub fn process_libinput(&mut self, event: InputEvent<LibinputInputBackend>) {
        match event {
            InputEvent::DeviceAdded { device } => {
                let facts = devices::DeviceFacts::read(device.sysname());
                let mut tracked = devices::TrackedDevice { device, facts };
                devices::configure(&mut tracked, &self.config.input);
                self.track_input(Some(tracked), None);
            }
            InputEvent::DeviceRemoved { device } => self.track_input(None, Some(&device)),
            // Absolute positions land on the output the device spans.
            InputEvent::PointerMotionAbsolute { event } => self.point_at(&event),
            InputEvent::TouchDown { event } => {
                if let Some(at) = self.mapped(&event, devices::AbsoluteKind::Touch) {
                    self.touch_down(slot(event.slot()), at, event.time_msec());
                }
            }
            InputEvent::TouchMotion { event } => {
                if let Some(at) = self.mapped(&event, devices::AbsoluteKind::Touch) {
                    self.touch_motion(slot(event.slot()), at, event.time_msec());
                }
            }
            // A stylus drives the pointer, as every compositor does for a
            // client without tablet-v2: the tip is the left button, the
            // stylus's buttons the right and middle ones.
            InputEvent::TabletToolProximity { event } => self.point_at(&event),
            InputEvent::TabletToolAxis { event } => self.point_at(&event),
            InputEvent::TabletToolTip { event } => {
                self.point_at(&event);
                let down = TabletToolTipEvent::tip_state(&event) == TabletToolTipState::Down;
                self.pointer_button(crate::input::BTN_LEFT, down);
            }
            InputEvent::TabletToolButton { event } => {
                // smithay's traits, not libinput's own methods of the same names.
                let button = devices::stylus_button(TabletToolButtonEvent::button(&event));
                let pressed = TabletToolButtonEvent::button_state(&event) == ButtonState::Pressed;
                self.pointer_button(button, pressed);
            }
            InputEvent::PointerMotion { event } => {
                let wanted = self.pointer_location + event.delta();
                let layout: Vec<_> = self
                    .space
                    .outputs()
                    .filter_map(|o| self.space.output_geometry(o))
                    .collect();
                self.pointer_move(clamp_to_layout(wanted, &layout));
            }
            other => self.process_input(other),
        }
    }

    /// Keeps the devices libinput has, for `msg inputs`, for reloads and for
    /// mapping their positions: `added` comes, `removed` goes.
    fn track_input(
        &mut self,
        added: Option<devices::TrackedDevice>,
        removed: Option<&libinput::Device>,
    ) {
        let Some(device) = added.as_ref().map(|t| &t.device).or(removed) else {
            return;
        };
        let sysname = device.sysname().to_owned();
        match &added {
            Some(t) => tracing::info!(
                name = device.name(),
                sysname,
                placement = t.facts.placement.name(),
                "input device added"
            ),
            None => tracing::info!(name = device.name(), sysname, "input device removed"),
        }
        if let Some(kms) = self.kms_mut() {
            kms.input_devices.retain(|d| d.device.sysname() != sysname);
            kms.input_devices.extend(added);
        }
    }

    /// Where an absolute event lands: on the output its device spans
    /// (`devices::output_for`), scaled to that output's size.
    fn mapped<E: AbsolutePositionEvent<LibinputInputBackend>>(
        &self,
        event: &E,
        kind: devices::AbsoluteKind,
    ) -> Option<Point<f64, Logical>> {
        let device = event.device();
        let outputs = self.output_names();
        let tracked = self
            .kms()?
            .input_devices
            .iter()
            .find(|d| d.device.sysname() == device.sysname());
        // An event from a device not yet announced lands on the first output.
        let name = match tracked {
            Some(t) => Some(devices::output_for(t, kind, &self.config.input, &outputs)?),
            None => None,
        };
        self.on_output(name, |size| event.position_transformed(size))
    }

    /// An absolute pointer or a stylus moves the pointer where it points.
    fn point_at<E: AbsolutePositionEvent<LibinputInputBackend>>(&mut self, event: &E) {
        if let Some(at) = self.mapped(event, devices::AbsoluteKind::Tablet) {
            self.pointer_move(at);
        }
    }

    /// The events every input backend delivers alike (libinput on kms, the
    /// window on nested): keys, buttons and scrolling; and absolute motion and
    /// touch from the nested window.
    pub(crate) fn process_input<B: InputBackend>(&mut self, event: InputEvent<B>) {
        match event {
            InputEvent::Keyboard { event } => {
                // xkb keycodes are evdev codes plus 8; `handle_key` takes evdev.
                let code = event.key_code().raw().saturating_sub(8);
                let pressed = event.state() == KeyState::Pressed;
                self.handle_key(code, pressed, event.time_msec());
            }
            InputEvent::PointerMotionAbsolute { event } => {
                // The nested window: it shows the first output. (libinput's
                // absolute devices are mapped in `process_libinput`.)
                if let Some(at) = self.on_output(None, |size| event.position_transformed(size)) {
                    self.pointer_move(at);
                }
            }
            InputEvent::PointerButton { event } => {
                self.pointer_button(event.button_code(), event.state() == ButtonState::Pressed);
            }
            InputEvent::PointerAxis { event } => self.pointer_axis::<B>(&event),
            // Touch in the nested window, on the first output, as above.
            InputEvent::TouchDown { event } => {
                if let Some(at) = self.on_output(None, |size| event.position_transformed(size)) {
                    self.touch_down(slot(event.slot()), at, event.time_msec());
                }
            }
            InputEvent::TouchMotion { event } => {
                if let Some(at) = self.on_output(None, |size| event.position_transformed(size)) {
                    self.touch_motion(slot(event.slot()), at, event.time_msec());
                }
            }
            InputEvent::TouchUp { event } => {
                self.touch_up(slot(event.slot()), event.time_msec());
            }
            InputEvent::TouchFrame { .. } => self.touch_frame(),
            InputEvent::TouchCancel { .. } => self.touch_cancel(),
            _ => {}
        }
    }

    /// A position on the output named `name` (the first output for `None`),
    /// from the device's `transformed` answer for that output's size.
    fn on_output(
        &self,
        name: Option<&str>,
        transformed: impl FnOnce(smithay::utils::Size<i32, Logical>) -> Point<f64, Logical>,
    ) -> Option<Point<f64, Logical>> {
        let output = match name {
            Some(name) => self.space.outputs().find(|o| o.name() == name)?,
            None => self.space.outputs().next()?,
        };
        let geo = self.space.output_geometry(output)?;
        Some(transformed(geo.size) + geo.loc.to_f64())
    }

    fn pointer_axis<B: InputBackend>(&mut self, event: &B::PointerAxisEvent) {
        self.activity();
        if self.cursor.pointer_used() {
            self.needs_redraw = true;
        }
        let Some(pointer) = self.seat.get_pointer() else {
            return;
        };
        let source = event.source();
        let mut frame = AxisFrame::new(event.time_msec()).source(source);
        for axis in [Axis::Horizontal, Axis::Vertical] {
            let amount = event.amount(axis);
            if let Some(v) = amount {
                frame = frame.relative_direction(axis, event.relative_direction(axis));
                frame = frame.value(axis, v);
            }
            if let Some(steps) = event.amount_v120(axis) {
                frame = frame.v120(axis, steps as i32);
            }
            // A finger lifted off a touchpad: kinetic scrolling may start now.
            if source == AxisSource::Finger && amount == Some(0.0) {
                frame = frame.stop(axis);
            }
        }
        pointer.axis(self, frame);
        pointer.frame(self);
    }
}

/// libinput's event as smithay's backend would have given it, for the kinds
/// the session acts on (gestures, tablet tools and switches it leaves alone).
fn smithay_event(event: libinput::Event) -> Option<InputEvent<LibinputInputBackend>> {
    use libinput::event::{
        DeviceEvent, EventTrait, KeyboardEvent, PointerEvent, TabletToolEvent, TouchEvent,
    };
    use smithay::backend::libinput::PointerScrollAxis;
    Some(match event {
        libinput::Event::Device(DeviceEvent::Added(e)) => {
            InputEvent::DeviceAdded { device: e.device() }
        }
        libinput::Event::Device(DeviceEvent::Removed(e)) => {
            InputEvent::DeviceRemoved { device: e.device() }
        }
        libinput::Event::Keyboard(KeyboardEvent::Key(event)) => InputEvent::Keyboard { event },
        libinput::Event::Pointer(p) => match p {
            PointerEvent::Motion(event) => InputEvent::PointerMotion { event },
            PointerEvent::MotionAbsolute(event) => InputEvent::PointerMotionAbsolute { event },
            PointerEvent::Button(event) => InputEvent::PointerButton { event },
            PointerEvent::ScrollWheel(e) => InputEvent::PointerAxis {
                event: PointerScrollAxis::Wheel(e),
            },
            PointerEvent::ScrollFinger(e) => InputEvent::PointerAxis {
                event: PointerScrollAxis::Finger(e),
            },
            PointerEvent::ScrollContinuous(e) => InputEvent::PointerAxis {
                event: PointerScrollAxis::Continuous(e),
            },
            // The deprecated axis event: libinput sends the scroll events too.
            _ => return None,
        },
        libinput::Event::Tablet(t) => match t {
            TabletToolEvent::Axis(event) => InputEvent::TabletToolAxis { event },
            TabletToolEvent::Proximity(event) => InputEvent::TabletToolProximity { event },
            TabletToolEvent::Tip(event) => InputEvent::TabletToolTip { event },
            TabletToolEvent::Button(event) => InputEvent::TabletToolButton { event },
            _ => return None,
        },
        libinput::Event::Touch(t) => match t {
            TouchEvent::Down(event) => InputEvent::TouchDown { event },
            TouchEvent::Motion(event) => InputEvent::TouchMotion { event },
            TouchEvent::Up(event) => InputEvent::TouchUp { event },
            TouchEvent::Cancel(event) => InputEvent::TouchCancel { event },
            TouchEvent::Frame(event) => InputEvent::TouchFrame { event },
            _ => return None,
        },
        _ => return None,
    })
}

/// The slot number libinput gave a finger, if any (single-touch devices give none).
fn slot(slot: smithay::backend::input::TouchSlot) -> Option<u32> {
    u32::try_from(i32::from(slot)).ok()
}

/// Keeps a pointer moved by relative motion inside the union of the outputs:
/// a point outside all of them goes to the nearest point of the nearest one, so
/// the pointer slides along edges instead of getting lost in a gap.
pub fn clamp_to_layout(
    p: Point<f64, Logical>,
    outputs: &[Rectangle<i32, Logical>],
) -> Point<f64, Logical> {
    let mut best: Option<(f64, Point<f64, Logical>)> = None;
    for r in outputs {
        // The right and bottom edges are outside the rectangle: stay a hair inside.
        let max_x = f64::from(r.loc.x + r.size.w) - 1.0 / 256.0;
        let max_y = f64::from(r.loc.y + r.size.h) - 1.0 / 256.0;
        let q = Point::from((
            p.x.clamp(f64::from(r.loc.x), max_x.max(f64::from(r.loc.x))),
            p.y.clamp(f64::from(r.loc.y), max_y.max(f64::from(r.loc.y))),
        ));
        let d = (q.x - p.x).powi(2) + (q.y - p.y).powi(2);
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, q));
        }
    }
    best.map_or(p, |(_, q)| q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: i32, y: i32, w: i32, h: i32) -> Rectangle<i32, Logical> {
        Rectangle::new((x, y).into(), (w, h).into())
    }

    #[test]
    fn the_pointer_stays_on_the_outputs() {
        let layout = [rect(0, 0, 1920, 1080), rect(1920, 0, 1280, 720)];
        let inside: Point<f64, Logical> = (100.0, 100.0).into();
        assert_eq!(clamp_to_layout(inside, &layout), inside);
        let left = clamp_to_layout((-50.0, 500.0).into(), &layout);
        assert_eq!(left, (0.0, 500.0).into());
        // Below the shorter output: onto its bottom edge, not into the gap.
        let gap = clamp_to_layout((2500.0, 800.0).into(), &layout);
        assert!(gap.x == 2500.0 && gap.y < 720.0 && gap.y > 719.0, "{gap:?}");
        // Just right of the taller one's corner: back onto the nearer output.
        let near = clamp_to_layout((2000.0, 900.0).into(), &layout);
        assert!(
            near.x < 1920.0 && near.x > 1919.0 && near.y == 900.0,
            "{near:?}"
        );
        let far = clamp_to_layout((5000.0, -10.0).into(), &layout);
        assert!(far.x < 3200.0 && far.x > 3199.0 && far.y == 0.0, "{far:?}");
        assert_eq!(clamp_to_layout(inside, &[]), inside);
    }
}
