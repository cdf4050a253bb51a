//! Touch screens (wl_touch). A finger belongs to the surface it came down on
//! until it lifts, wherever it slides (smithay's touch handle keeps that
//! implicit grab per slot); coming down on a window focuses and raises it, as a
//! click does. The pointer hides at a touch and shows again when it moves, as
//! on ChromeOS. Locking the session cancels every finger, so a touch begun on
//! a window never reaches it once the lock surface is up.

use smithay::backend::input::TouchSlot;
use smithay::input::touch::{DownEvent, MotionEvent, UpEvent};
use smithay::utils::{Logical, Point, SERIAL_COUNTER};

use crate::state::Tessera;

impl Tessera {
    /// A finger came down at a global position. `slot` tells fingers apart.
    pub fn touch_down(&mut self, slot: Option<u32>, location: Point<f64, Logical>, time: u32) {
        self.activity();
        if self.cursor.touched() {
            self.needs_redraw = true;
        }
        let Some(touch) = self.seat.get_touch() else {
            return;
        };
        if !self.lock.is_locked() {
            let window = self.space.element_under(location).map(|(w, _)| w.clone());
            if let Some(w) = window {
                self.focus_window(Some(w));
            }
        }
        self.touch_points.insert(slot, location);
        let under = self.surface_under(location);
        let event = DownEvent {
            slot: TouchSlot::from(slot),
            location,
            serial: SERIAL_COUNTER.next_serial(),
            time,
        };
        touch.down(self, under, &event);
    }

    /// A finger moved; it stays with the surface it came down on.
    pub fn touch_motion(&mut self, slot: Option<u32>, location: Point<f64, Logical>, time: u32) {
        self.activity();
        let Some(touch) = self.seat.get_touch() else {
            return;
        };
        if let Some(at) = self.touch_points.get_mut(&slot) {
            *at = location;
        }
        let under = self.surface_under(location);
        let event = MotionEvent {
            slot: TouchSlot::from(slot),
            location,
            time,
        };
        touch.motion(self, under, &event);
    }

    pub fn touch_up(&mut self, slot: Option<u32>, time: u32) {
        self.activity();
        let Some(touch) = self.seat.get_touch() else {
            return;
        };
        self.touch_points.remove(&slot);
        let event = UpEvent {
            slot: TouchSlot::from(slot),
            serial: SERIAL_COUNTER.next_serial(),
            time,
        };
        touch.up(self, &event);
    }

    /// The end of one set of simultaneous finger changes.
    pub fn touch_frame(&mut self) {
        if let Some(touch) = self.seat.get_touch() {
            touch.frame(self);
        }
    }

    /// Every finger is taken away from its surface (the device said so, or
    /// the session locked).
    pub fn touch_cancel(&mut self) {
        let Some(touch) = self.seat.get_touch() else {
            return;
        };
        // smithay 0.7 cancels only the fingers with an event since the last
        // frame, so a finger resting still after its frame would keep its
        // surface. Each finger down is restated where it is first.
        let time = self.now().as_millis() as u32;
        for (slot, location) in std::mem::take(&mut self.touch_points) {
            let event = MotionEvent {
                slot: TouchSlot::from(slot),
                location,
                time,
            };
            touch.motion(self, None, &event);
        }
        touch.cancel(self);
    }

    /// A tap at a global position, for scripts and tests (`tessera msg touch tap`).
    pub fn touch_tap(&mut self, location: Point<f64, Logical>) {
        let time = self.now().as_millis() as u32;
        self.touch_down(Some(0), location, time);
        self.touch_frame();
        self.touch_up(Some(0), time);
        self.touch_frame();
    }
}
