//! Keyboard and pointer input: key bindings, and the injected input the IPC uses
//! (the headless backend has no devices, so tests type and click through it).

use std::collections::HashMap;

use smithay::backend::input::{ButtonState, KeyState};
use smithay::input::keyboard::{FilterResult, Keycode, Keysym, ModifiersState, XkbConfig, xkb};
use smithay::input::pointer::{ButtonEvent, MotionEvent};
use smithay::utils::{Logical, Point, SERIAL_COUNTER};
use tessera_config::compositor::{Action, KeyCombo, Mods};

use crate::state::Tessera;

/// evdev codes of the modifiers used when injecting text.
const KEY_LEFTSHIFT: u32 = 42;
const KEY_LEFTCTRL: u32 = 29;
const KEY_LEFTALT: u32 = 56;
const KEY_LEFTMETA: u32 = 125;
pub const BTN_LEFT: u32 = 0x110;
pub const BTN_RIGHT: u32 = 0x111;
pub const BTN_MIDDLE: u32 = 0x112;

/// Keysym → (evdev keycode, needs shift), from the active keymap's first layout.
#[derive(Debug, Default)]
pub struct KeyTable {
    by_sym: HashMap<u32, (u32, bool)>,
}

impl KeyTable {
    pub fn new(config: &XkbConfig<'_>) -> anyhow::Result<Self> {
        let ctx = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
        let options = config.options.clone();
        let keymap = xkb::Keymap::new_from_names(
            &ctx,
            config.rules,
            config.model,
            config.layout,
            config.variant,
            options,
            xkb::KEYMAP_COMPILE_NO_FLAGS,
        )
        .ok_or_else(|| {
            anyhow::anyhow!(
                "xkb cannot compile layout `{}` variant `{}`",
                config.layout,
                config.variant
            )
        })?;
        let mut by_sym = HashMap::new();
        let (min, max) = (keymap.min_keycode().raw(), keymap.max_keycode().raw());
        for level in [0u32, 1] {
            for raw in min..=max {
                let code = Keycode::new(raw);
                for sym in keymap.key_get_syms_by_level(code, 0, level) {
                    // Prefer the unshifted key, and the lowest keycode, for a keysym.
                    by_sym.entry(sym.raw()).or_insert((raw - 8, level == 1));
                }
            }
        }
        Ok(Self { by_sym })
    }

    pub fn lookup(&self, sym: Keysym) -> Option<(u32, bool)> {
        self.by_sym.get(&sym.raw()).copied()
    }
}

/// The keysym a character is typed with.
pub fn keysym_for_char(c: char) -> Keysym {
    match c {
        '\n' => Keysym::Return,
        '\t' => Keysym::Tab,
        '\u{8}' => Keysym::BackSpace,
        '\u{1b}' => Keysym::Escape,
        c => xkb::utf32_to_keysym(c as u32),
    }
}

/// Parses `Ctrl+Alt+t`-style combos for `tessera msg key`.
pub fn parse_combo(text: &str) -> Result<(Mods, Keysym), String> {
    let combo: KeyCombo = text.parse()?;
    let sym = keysym_by_name(&combo.key).ok_or_else(|| format!("unknown key `{}`", combo.key))?;
    Ok((combo.mods, sym))
}

pub fn keysym_by_name(name: &str) -> Option<Keysym> {
    let sym = xkb::keysym_from_name(name, xkb::KEYSYM_NO_FLAGS);
    let sym = if sym.raw() == 0 {
        xkb::keysym_from_name(name, xkb::KEYSYM_CASE_INSENSITIVE)
    } else {
        sym
    };
    (sym.raw() != 0).then_some(sym)
}

/// The lower-case keysym of a Latin letter (xkbcommon-rs has no binding for
/// xkb_keysym_to_lower); other keysyms are returned unchanged.
pub fn keysym_lower(sym: Keysym) -> Keysym {
    let raw = sym.raw();
    match raw {
        0x41..=0x5a | 0xc0..=0xd6 | 0xd8..=0xde => Keysym::new(raw + 0x20),
        _ => sym,
    }
}

/// The VT an `XF86Switch_VT_N` keysym asks for (xkb gives it for Ctrl+Alt+FN
/// with the usual `srvrkeys`).
fn switch_vt_keysym(sym: Keysym) -> Option<u8> {
    let first = xkb::keysyms::KEY_XF86Switch_VT_1;
    let n = sym.raw().checked_sub(first)?;
    (n < 12).then(|| n as u8 + 1)
}

fn mods_of(state: &ModifiersState) -> Mods {
    Mods {
        ctrl: state.ctrl,
        alt: state.alt,
        shift: state.shift,
        logo: state.logo,
    }
}

/// Bindings resolved to keysyms. Bindings match on the keysym without Shift
/// applied (so `Super+Shift+e` matches the `e` key), as sway and niri do.
#[derive(Debug, Default)]
pub struct Bindings {
    map: HashMap<(Mods, u32), Action>,
}

impl Bindings {
    pub fn new(binds: &std::collections::BTreeMap<KeyCombo, Action>) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (combo, action) in binds {
            let sym = keysym_by_name(&combo.key)
                .ok_or_else(|| format!("binds: key `{combo}`: unknown keysym `{}`", combo.key))?;
            let lower = keysym_lower(sym);
            map.insert((combo.mods, lower.raw()), action.clone());
        }
        Ok(Self { map })
    }

    pub fn find(&self, mods: Mods, sym: Keysym) -> Option<&Action> {
        self.map.get(&(mods, keysym_lower(sym).raw()))
    }

    /// What a key press does before any client sees it. `sym` is the key
    /// without its modifiers' effect (bindings are written that way), `modified`
    /// the keysym the keymap gives with them.
    ///
    /// The keymap's VT keys switch VTs whatever the bindings say and even while
    /// locked, as on a text console (and in sway): a session with a broken
    /// locker or an empty `[binds]` can still be left for a console. While
    /// locked, every other key goes to the lock surface.
    pub fn intercept(
        &self,
        locked: bool,
        mods: Mods,
        sym: Keysym,
        modified: Keysym,
    ) -> Option<Action> {
        if let Some(vt) = switch_vt_keysym(modified) {
            return Some(Action::SwitchVt(vt));
        }
        if locked {
            return None;
        }
        self.find(mods, sym).cloned()
    }
}

impl Tessera {
    /// A key event from a device or from the IPC: bindings first, then the client.
    pub fn handle_key(&mut self, evdev_code: u32, pressed: bool, time: u32) {
        self.activity();
        if pressed && self.cursor.key_pressed() {
            self.needs_redraw = true;
        }
        let Some(keyboard) = self.seat.get_keyboard() else {
            return;
        };
        let serial = SERIAL_COUNTER.next_serial();
        let state = if pressed {
            KeyState::Pressed
        } else {
            KeyState::Released
        };
        let locked = self.lock.is_locked();
        let action = keyboard.input(
            self,
            Keycode::new(evdev_code + 8),
            state,
            serial,
            time,
            |st, mods, handle| {
                if !pressed {
                    return FilterResult::Forward;
                }
                let sym = handle
                    .raw_latin_sym_or_raw_current_sym()
                    .unwrap_or_else(|| handle.modified_sym());
                match st
                    .bindings
                    .intercept(locked, mods_of(mods), sym, handle.modified_sym())
                {
                    Some(action) => FilterResult::Intercept(action),
                    None => FilterResult::Forward,
                }
            },
        );
        if let Some(action) = action {
            self.run_action(action);
        }
    }

    pub fn run_action(&mut self, action: Action) {
        tracing::debug!(?action, "binding");
        match action {
            Action::Spawn(cmd) | Action::Run(cmd) => crate::spawn::spawn(self, &cmd),
            Action::Close => {
                if let Some(w) = self.shell.focus.front()
                    && let Some(t) = w.toplevel()
                {
                    t.send_close();
                }
            }
            Action::CycleFocus => self.cycle_focus(true),
            Action::CycleFocusBack => self.cycle_focus(false),
            Action::Fullscreen => {
                if let Some(w) = self.shell.focus.front().cloned() {
                    let on = crate::shell::meta(&w, |m| m.fullscreen_on.is_none());
                    self.set_fullscreen(&w, on, None);
                }
            }
            Action::Maximize => {
                if let Some(w) = self.shell.focus.front().cloned() {
                    let on = !w.toplevel().is_some_and(|t| {
                        t.with_pending_state(|s| {
                            s.states.contains(smithay::reexports::wayland_protocols::xdg::shell::server::xdg_toplevel::State::Maximized)
                        })
                    });
                    self.set_maximized(&w, on);
                }
            }
            Action::Lock => match self.config.lock.command.clone() {
                Some(cmd) => crate::spawn::spawn(self, &cmd),
                None => tracing::warn!("lock: no [lock] command configured"),
            },
            Action::SwitchVt(n) => match &mut self.backend {
                crate::backend::Backend::Kms(kms) => kms.change_vt(n),
                other => tracing::info!(
                    vt = n,
                    backend = other.name(),
                    "VT switch needs the kms backend"
                ),
            },
            Action::Quit => self.quit(),
        }
    }

    /// Types `text` as key presses on the active layout.
    pub fn type_text(&mut self, text: &str) -> Result<(), String> {
        for c in text.chars() {
            let sym = keysym_for_char(c);
            let (code, shift) = self.keys.lookup(sym).ok_or_else(|| {
                format!("`{}` cannot be typed on this layout", c.escape_default())
            })?;
            let time = self.now().as_millis() as u32;
            if shift {
                self.handle_key(KEY_LEFTSHIFT, true, time);
            }
            self.handle_key(code, true, time);
            self.handle_key(code, false, time);
            if shift {
                self.handle_key(KEY_LEFTSHIFT, false, time);
            }
        }
        Ok(())
    }

    /// Presses a combo such as `Super+Return`, going through the bindings.
    pub fn press_combo(&mut self, combo: &str) -> Result<(), String> {
        let (mods, sym) = parse_combo(combo)?;
        let (code, _) = self
            .keys
            .lookup(sym)
            .or_else(|| self.keys.lookup(keysym_lower(sym)))
            .ok_or_else(|| format!("key `{combo}` is not on this layout"))?;
        let held: Vec<u32> = [
            (mods.ctrl, KEY_LEFTCTRL),
            (mods.alt, KEY_LEFTALT),
            (mods.shift, KEY_LEFTSHIFT),
            (mods.logo, KEY_LEFTMETA),
        ]
        .into_iter()
        .filter_map(|(on, k)| on.then_some(k))
        .collect();
        let time = self.now().as_millis() as u32;
        for k in &held {
            self.handle_key(*k, true, time);
        }
        self.handle_key(code, true, time);
        self.handle_key(code, false, time);
        for k in held.iter().rev() {
            self.handle_key(*k, false, time);
        }
        Ok(())
    }

    /// Moves the pointer to a global position; focus follows what is under it.
    pub fn pointer_move(&mut self, location: Point<f64, Logical>) {
        self.activity();
        self.cursor.pointer_used();
        self.pointer_location = location;
        let Some(pointer) = self.seat.get_pointer() else {
            return;
        };
        let under = self.surface_under(location);
        self.pointer_under = under.clone();
        let event = MotionEvent {
            location,
            serial: SERIAL_COUNTER.next_serial(),
            time: self.now().as_millis() as u32,
        };
        pointer.motion(self, under, &event);
        pointer.frame(self);
        self.needs_redraw = true;
    }

    /// After the layout changed under a pointer that did not move (a window opened,
    /// closed, moved or was resized; the session locked), tells clients what is
    /// under it now, so enter and leave follow at once and not at the next motion,
    /// as sway's cursor rebase does. It is not user activity: the idle timer is
    /// left alone. During a grab (a drag) the grab owns the focus.
    pub fn pointer_rebase(&mut self) {
        let Some(pointer) = self.seat.get_pointer() else {
            return;
        };
        if pointer.is_grabbed() {
            return;
        }
        let under = self.surface_under(self.pointer_location);
        if under == self.pointer_under {
            return;
        }
        self.pointer_under = under.clone();
        let event = MotionEvent {
            location: self.pointer_location,
            serial: SERIAL_COUNTER.next_serial(),
            time: self.now().as_millis() as u32,
        };
        pointer.motion(self, under, &event);
        pointer.frame(self);
    }

    /// A click: focus (and raise) the window under the pointer, then deliver it.
    pub fn pointer_button(&mut self, button: u32, pressed: bool) {
        self.activity();
        if self.cursor.pointer_used() {
            self.needs_redraw = true;
        }
        let Some(pointer) = self.seat.get_pointer() else {
            return;
        };
        self.pointer_buttons.retain(|b| *b != button);
        if pressed {
            self.pointer_buttons.push(button);
        }
        let serial = SERIAL_COUNTER.next_serial();
        if pressed && !pointer.is_grabbed() && !self.lock.is_locked() {
            let window = self
                .space
                .element_under(self.pointer_location)
                .map(|(w, _)| w.clone());
            if let Some(w) = window {
                self.focus_window(Some(w));
            }
        }
        let state = if pressed {
            ButtonState::Pressed
        } else {
            ButtonState::Released
        };
        pointer.button(
            self,
            &ButtonEvent {
                button,
                state,
                serial,
                time: self.now().as_millis() as u32,
            },
        );
        pointer.frame(self);
    }

    /// The surface under a global point and its origin, honouring the lock and
    /// the layer order.
    pub fn surface_under(
        &self,
        location: Point<f64, Logical>,
    ) -> Option<(
        smithay::reexports::wayland_server::protocol::wl_surface::WlSurface,
        Point<f64, Logical>,
    )> {
        use smithay::desktop::{WindowSurfaceType, layer_map_for_output};
        use smithay::wayland::shell::wlr_layer::Layer;
        let output = self.space.output_under(location).next()?;
        let output_geo = self.space.output_geometry(output)?;
        if self.lock.is_locked() {
            let lock = self.lock.surface_for(output)?;
            return Some((lock.wl_surface().clone(), output_geo.loc.to_f64()));
        }
        let layers = layer_map_for_output(output);
        let local = location - output_geo.loc.to_f64();
        let layer_hit = |layer: Layer| {
            layers.layer_under(layer, local).and_then(|l| {
                let geo = layers.layer_geometry(l)?;
                l.surface_under(local - geo.loc.to_f64(), WindowSurfaceType::ALL)
                    .map(|(s, p)| (s, (p + geo.loc + output_geo.loc).to_f64()))
            })
        };
        if let Some(hit) = layer_hit(Layer::Overlay).or_else(|| layer_hit(Layer::Top)) {
            return Some(hit);
        }
        if let Some((window, loc)) = self.space.element_under(location)
            && let Some((s, p)) =
                window.surface_under(location - loc.to_f64(), WindowSurfaceType::ALL)
        {
            return Some((s, (p + loc).to_f64()));
        }
        layer_hit(Layer::Bottom).or_else(|| layer_hit(Layer::Background))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn vt_keys_switch_even_while_locked_and_other_bindings_wait_for_the_unlock() {
        let mut binds = std::collections::BTreeMap::new();
        binds.insert(KeyCombo::from_str("Super+q").unwrap(), Action::Close);
        let b = Bindings::new(&binds).unwrap();
        let ctrl_alt = Mods {
            ctrl: true,
            alt: true,
            ..Mods::default()
        };
        let super_ = Mods {
            logo: true,
            ..Mods::default()
        };
        let f3 = Keysym::new(xkb::keysyms::KEY_F3);
        let vt3 = Keysym::new(xkb::keysyms::KEY_XF86Switch_VT_1 + 2);
        let q = Keysym::new(xkb::keysyms::KEY_q);
        for locked in [false, true] {
            // Not in [binds], and still a VT switch.
            assert_eq!(
                b.intercept(locked, ctrl_alt, f3, vt3),
                Some(Action::SwitchVt(3))
            );
            // A plain F3 goes to the client.
            assert_eq!(b.intercept(locked, Mods::default(), f3, f3), None);
        }
        assert_eq!(b.intercept(false, super_, q, q), Some(Action::Close));
        assert_eq!(b.intercept(true, super_, q, q), None, "locked");
    }

    #[test]
    fn the_vt_keysyms_name_vts_1_to_12_and_nothing_else_does() {
        let vt = |raw: u32| switch_vt_keysym(Keysym::new(raw));
        let first = xkb::keysyms::KEY_XF86Switch_VT_1;
        assert_eq!(vt(first), Some(1));
        assert_eq!(vt(xkb::keysyms::KEY_XF86Switch_VT_12), Some(12));
        assert_eq!(vt(first + 12), None);
        assert_eq!(vt(first - 1), None);
        assert_eq!(vt(xkb::keysyms::KEY_F2), None);
    }

    fn us() -> KeyTable {
        KeyTable::new(&XkbConfig {
            layout: "us",
            ..XkbConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn characters_map_to_us_keycodes() {
        let t = us();
        assert_eq!(t.lookup(keysym_for_char('a')), Some((30, false)));
        assert_eq!(t.lookup(keysym_for_char('A')), Some((30, true)));
        assert_eq!(t.lookup(keysym_for_char('\n')), Some((28, false)));
        assert_eq!(t.lookup(keysym_for_char('-')), Some((12, false)));
        assert_eq!(t.lookup(keysym_for_char('é')), None);
    }

    #[test]
    fn combos_parse_to_mods_and_keysyms() {
        let (m, s) = parse_combo("Super+Return").unwrap();
        assert!(m.logo && !m.ctrl);
        assert_eq!(s, Keysym::Return);
        assert!(parse_combo("Super+NoSuchKey").is_err());
    }

    #[test]
    fn bindings_match_shifted_combos_on_the_base_key() {
        let binds: std::collections::BTreeMap<KeyCombo, Action> = [
            ("Super+Shift+e".parse().unwrap(), Action::Quit),
            ("Alt+Tab".parse().unwrap(), Action::CycleFocus),
        ]
        .into_iter()
        .collect();
        let b = Bindings::new(&binds).unwrap();
        let shift_logo = Mods {
            shift: true,
            logo: true,
            ..Mods::default()
        };
        assert_eq!(b.find(shift_logo, Keysym::E), Some(&Action::Quit));
        assert_eq!(b.find(shift_logo, Keysym::e), Some(&Action::Quit));
        let alt = Mods {
            alt: true,
            ..Mods::default()
        };
        assert_eq!(b.find(alt, Keysym::Tab), Some(&Action::CycleFocus));
        assert_eq!(b.find(Mods::default(), Keysym::Tab), None);
        let bad: std::collections::BTreeMap<KeyCombo, Action> =
            [("Super+Nope".parse().unwrap(), Action::Quit)]
                .into_iter()
                .collect();
        assert!(
            Bindings::new(&bad)
                .unwrap_err()
                .contains("unknown keysym `Nope`")
        );
    }
}
