//! The session's input on the kms backend, end to end (`appliance_vm.rs`): QEMU's
//! virtio keyboard, mouse and tablet, and a touch screen and a stylus made inside
//! the guest through uinput with evemu (Debian's QEMU 7.2 has no
//! virtio-multitouch, nor any pen). Each
//! reaches tessera the way a real device does: the kernel's evdev node, udev's
//! classification, logind handing the node to libinput through libseat. What
//! tessera made of them is read back with `tessera msg inputs`, and the keys are
//! checked by their effect: a command typed at the keyboard runs in foot's shell.

use std::time::Duration;

use serde_json::{Value, json};
use tessera_rig::Vm;

use crate::support::{MSG, json as guest_json, sh, sh_rc, until};

/// A device evemu-device makes through uinput, on USB (bus 0003, vendor 1d6b)
/// as a touch monitor or a pen display is.
struct Evemu {
    name: &'static str,
    product: u16,
    /// `INPUT_PROP_*` codes.
    props: &'static [u16],
    /// `EV_KEY` codes.
    keys: &'static [u16],
    /// `EV_ABS` codes with their minimum, maximum and resolution (units per mm).
    axes: &'static [(u16, i32, i32, i32)],
}

impl Evemu {
    /// The description `evemu-device` reads: each bitmap in lines of 8 bytes.
    fn description(&self) -> String {
        fn bitmap(prefix: &str, codes: &[u16]) -> String {
            let bytes = codes.iter().map(|c| *c as usize / 8 + 1).max().unwrap_or(1);
            let mut bits = vec![0u8; bytes.div_ceil(8) * 8];
            for c in codes {
                bits[*c as usize / 8] |= 1 << (c % 8);
            }
            bits.chunks(8)
                .map(|line| {
                    let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{prefix}{}\n", hex.join(" "))
                })
                .collect()
        }
        let abs: Vec<u16> = self.axes.iter().map(|a| a.0).collect();
        let mut text = format!(
            "# EVEMU 1.3\nN: {}\nI: 0003 1d6b {:04x} 0001\n",
            self.name, self.product
        );
        text += &bitmap("P: ", self.props);
        // EV_SYN, EV_KEY, EV_ABS.
        text += &bitmap("B: 00 ", &[0x00, 0x01, 0x03]);
        text += &bitmap("B: 01 ", self.keys);
        text += &bitmap("B: 03 ", &abs);
        for (code, min, max, res) in self.axes {
            text += &format!("A: {code:02x} {min} {max} 0 0 {res}\n");
        }
        text
    }
}

const INPUT_PROP_DIRECT: u16 = 0x01;
const BTN_TOOL_PEN: u16 = 0x140;
const BTN_TOUCH: u16 = 0x14a;
const BTN_STYLUS: u16 = 0x14b;
const BTN_STYLUS2: u16 = 0x14c;
const ABS_X: u16 = 0x00;
const ABS_Y: u16 = 0x01;
const ABS_PRESSURE: u16 = 0x18;
const ABS_MT_SLOT: u16 = 0x2f;
const ABS_MT_POSITION_X: u16 = 0x35;
const ABS_MT_POSITION_Y: u16 = 0x36;
const ABS_MT_TRACKING_ID: u16 = 0x39;

/// The touch screen: multi-touch (slots, tracking ids) with the single-touch
/// axes beside them, `INPUT_PROP_DIRECT` so udev calls it a touch screen, 4096
/// units a side at 16 units per mm.
const TOUCHSCREEN: Evemu = Evemu {
    name: "tessera-test touchscreen",
    product: 1,
    props: &[INPUT_PROP_DIRECT],
    keys: &[BTN_TOUCH],
    axes: &[
        (ABS_X, 0, 4095, 16),
        (ABS_Y, 0, 4095, 16),
        (ABS_MT_SLOT, 0, 9, 0),
        (ABS_MT_POSITION_X, 0, 4095, 16),
        (ABS_MT_POSITION_Y, 0, 4095, 16),
        (ABS_MT_TRACKING_ID, 0, 65535, 0),
    ],
};

/// A stylus on a pen display: the pen tool, its tip (`BTN_TOUCH`) and two
/// buttons; x, y and pressure; 4096 units a side at 16 units per mm (libinput
/// takes no tablet without a resolution).
const PEN: Evemu = Evemu {
    name: "tessera-test pen",
    product: 2,
    props: &[INPUT_PROP_DIRECT],
    keys: &[BTN_TOOL_PEN, BTN_TOUCH, BTN_STYLUS, BTN_STYLUS2],
    axes: &[
        (ABS_X, 0, 4095, 16),
        (ABS_Y, 0, 4095, 16),
        (ABS_PRESSURE, 0, 2047, 0),
    ],
};

/// The edited config a reload reads: every mouse, then QEMU's mouse by name
/// over it, key by key; QEMU's tablet switched off.
const EDITED: &str = r#"[autostart]
commands = []
[input.mouse]
accel_speed = 0.5
natural_scroll = true
[input.device."QEMU Virtio Mouse"]
accel_speed = -0.5
[input.device."QEMU Virtio Tablet"]
enabled = false
"#;

fn inputs(vm: &mut Vm) -> Value {
    let answer = guest_json(vm, &format!("{MSG} inputs"));
    assert_eq!(answer["ok"], true, "{answer}");
    answer["data"].clone()
}

/// Asks `msg inputs` again until `ok` holds for its answer (60 s at most).
fn wait_inputs(vm: &mut Vm, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..60 {
        last = inputs(vm);
        if ok(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let journal = sh(
        vm,
        "journalctl -b -o cat SYSLOG_IDENTIFIER=tessera + _SYSTEMD_UNIT=tessera.service | grep -i -e input -e libinput | tail -n 30; ls -l /dev/input; true",
    );
    panic!("{what}: `msg inputs` said {last:#}\n{journal}");
}

/// The devices QEMU gives the guest (`VmConfig::with_input`).
const QEMU_DEVICES: [&str; 3] = [
    "QEMU Virtio Keyboard",
    "QEMU Virtio Mouse",
    "QEMU Virtio Tablet",
];

fn has_qemu_devices(seat: &Value) -> bool {
    QEMU_DEVICES.iter().all(|n| device(seat, n).is_some())
}

/// Types `touch FILE` and Return at QEMU's keyboard, and waits for the file:
/// the keys went through libinput and tessera to foot, and its shell ran them.
fn type_into_foot(vm: &mut Vm, qmp: &mut tessera_rig::qmp::Qmp, file: &str, when: &str) {
    let _ = sh_rc(vm, &format!("rm -f {file}"));
    qmp.type_text(&format!("touch {file}\n")).unwrap();
    let typed = until(30, Duration::from_secs(1), || {
        sh_rc(vm, &format!("test -e {file}")).1 == 0
    });
    assert!(
        typed,
        "{when}: keys typed at QEMU's keyboard did not reach foot's shell:\n{}",
        sh(
            vm,
            &format!(
                "{MSG} windows; {MSG} inputs; journalctl -b -o cat SYSLOG_IDENTIFIER=tessera + _SYSTEMD_UNIT=tessera.service | tail -n 40; true"
            )
        )
    );
}

/// QEMU's tablet to (x, y) of its 0..32767 range.
fn tablet_to(qmp: &mut tessera_rig::qmp::Qmp, x: i32, y: i32) {
    qmp_pair(qmp, "abs", x, y);
}

/// QEMU's mouse by (dx, dy) counts.
fn mouse_by(qmp: &mut tessera_rig::qmp::Qmp, dx: i32, dy: i32) {
    qmp_pair(qmp, "rel", dx, dy);
}

fn qmp_pair(qmp: &mut tessera_rig::qmp::Qmp, kind: &str, x: i32, y: i32) {
    qmp.input_events(json!([
        { "type": kind, "data": { "axis": "x", "value": x } },
        { "type": kind, "data": { "axis": "y", "value": y } },
    ]))
    .unwrap();
}

fn device<'a>(seat: &'a Value, name: &str) -> Option<&'a Value> {
    seat["devices"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == name)
}

fn pointer(seat: &Value) -> (f64, f64) {
    let p = &seat["pointer"];
    (
        p[0].as_f64().unwrap_or(f64::NAN),
        p[1].as_f64().unwrap_or(f64::NAN),
    )
}

/// The whole check; the output is 1280x800 and foot has the keyboard focus.
pub fn session_input(vm: &mut Vm) {
    // udev gave the event nodes to the `input` group, which the image's
    // sysusers.d makes (Debian makes it at install time, which /usr never sees).
    let groups = sh(vm, "stat -c '%n %G' /dev/input/event*");
    assert!(
        groups.lines().all(|l| l.ends_with(" input")),
        "event nodes not in the input group:\n{groups}\n{}",
        sh(vm, "getent group input; true")
    );
    // The TPM's nodes are tss's, as tpm-udev's rule says, with the user the
    // image's sysusers.d makes (Debian's postinst makes it at install time).
    let tpm = sh(vm, "stat -c '%n %U %G' /dev/tpmrm0");
    assert_eq!(
        tpm.trim(),
        "/dev/tpmrm0 tss tss",
        "{}",
        sh(vm, "getent passwd tss; true")
    );
    // QEMU's devices, as libinput classified them and as the config set them:
    // the mouse is a `[input.mouse]` pointer with acceleration, the tablet an
    // absolute pointer without.
    let seat = wait_inputs(vm, "QEMU's virtio input devices", has_qemu_devices);
    let keyboard = device(&seat, "QEMU Virtio Keyboard").unwrap();
    assert_eq!(keyboard["capabilities"], json!(["keyboard"]), "{seat:#}");
    let mouse = device(&seat, "QEMU Virtio Mouse").unwrap();
    assert_eq!(mouse["capabilities"], json!(["pointer"]), "{seat:#}");
    assert_eq!(mouse["kind"], "mouse", "{seat:#}");
    assert_eq!(mouse["accel_speed"], 0.0, "{seat:#}");
    assert_eq!(mouse["natural_scroll"], false, "{seat:#}");
    assert_eq!(mouse["sections"], json!(["input.mouse"]), "{seat:#}");
    assert_eq!(mouse["send_events"], "enabled", "{seat:#}");
    assert_eq!(mouse["output"], Value::Null, "{seat:#}");
    // virtio is no USB: built in, as a laptop's own devices are.
    assert_eq!(mouse["placement"], "built-in", "{seat:#}");
    // The tablet reports where it is, not how far it moved: `[input.tablet]`
    // maps it, onto the only output there is.
    let tablet = device(&seat, "QEMU Virtio Tablet").unwrap();
    assert_eq!(tablet["capabilities"], json!(["pointer"]), "{seat:#}");
    assert_eq!(tablet["accel_speed"], Value::Null, "{seat:#}");
    assert_eq!(
        tablet["sections"],
        json!(["input.mouse", "input.tablet"]),
        "{seat:#}"
    );
    assert_eq!(tablet["output"], "Virtual-1", "{seat:#}");

    // The tablet spans the first output: the middle of its range is the middle
    // of the 1280x800 screen.
    let mut qmp = vm.qmp().unwrap();
    tablet_to(&mut qmp, 16384, 16384);
    let seat = wait_inputs(vm, "the tablet at the middle of the screen", |s| {
        let (x, y) = pointer(s);
        (x - 640.0).abs() < 1.0 && (y - 400.0).abs() < 1.0
    });
    // The mouse moves it from there, right and down (accelerated, so not by
    // exactly the counts).
    let (x0, y0) = pointer(&seat);
    mouse_by(&mut qmp, 40, 30);
    wait_inputs(vm, "the mouse moving the pointer", |s| {
        let (x, y) = pointer(s);
        x > x0 + 5.0 && y > y0 + 5.0 && x < 1280.0 && y < 800.0
    });

    // A reload sets the devices there are from the new file. The vendor file
    // is on the read-only /usr; a bind mount stands in for an edited one.
    let (out, rc) = sh_rc(
        vm,
        &format!(
            "printf '{}' > /tmp/compositor.toml && mount --bind /tmp/compositor.toml /usr/share/tessera/compositor.toml",
            EDITED.replace('\n', "\\n")
        ),
    );
    assert_eq!(rc, 0, "{out}");
    let reload = guest_json(vm, &format!("{MSG} reload"));
    assert_eq!(reload["ok"], true, "{reload}");
    let seat = wait_inputs(vm, "the mouse and tablet after a reload", |s| {
        let mouse = device(s, "QEMU Virtio Mouse")
            .is_some_and(|m| m["accel_speed"] == -0.5 && m["natural_scroll"] == true);
        let tablet =
            device(s, "QEMU Virtio Tablet").is_some_and(|t| t["send_events"] == "disabled");
        mouse && tablet
    });
    assert_eq!(
        device(&seat, "QEMU Virtio Mouse").unwrap()["sections"],
        json!(["input.mouse", "input.device.\"QEMU Virtio Mouse\""]),
        "{seat:#}"
    );
    // The tablet, switched off, moves nothing: after it, the mouse moves the
    // pointer on from where it was, not from the tablet's top-left quarter.
    let (x0, y0) = pointer(&seat);
    tablet_to(&mut qmp, 8192, 8192);
    std::thread::sleep(Duration::from_secs(1));
    mouse_by(&mut qmp, 10, 10);
    wait_inputs(vm, "the mouse, with the tablet switched off", |s| {
        let (x, y) = pointer(s);
        x > x0 + 1.0 && y > y0 + 1.0 && x < 1280.0 && y < 800.0
    });
    sh(vm, "umount /usr/share/tessera/compositor.toml");
    let reload = guest_json(vm, &format!("{MSG} reload"));
    assert_eq!(reload["ok"], true, "{reload}");
    wait_inputs(
        vm,
        "the mouse and tablet after reloading the vendor file",
        |s| {
            let mouse = device(s, "QEMU Virtio Mouse").is_some_and(|m| {
                m["accel_speed"] == 0.0
                    && m["natural_scroll"] == false
                    && m["sections"] == json!(["input.mouse"])
            });
            let tablet =
                device(s, "QEMU Virtio Tablet").is_some_and(|t| t["send_events"] == "enabled");
            mouse && tablet
        },
    );

    // The keyboard: a command typed into foot runs in its shell.
    type_into_foot(vm, &mut qmp, "/tmp/typed-at-the-keyboard", "first typing");

    // A touch screen plugged in while the session runs.
    let node = evemu_plug(vm, "touchscreen", &TOUCHSCREEN);
    let seat = wait_inputs(vm, "the uinput touch screen", |s| {
        device(s, "tessera-test touchscreen").is_some()
    });
    let screen = device(&seat, "tessera-test touchscreen").unwrap();
    assert_eq!(screen["capabilities"], json!(["touch"]), "{seat:#}");
    // On USB (its evemu description says bus 0003): external, and so mapped
    // to the first output that is no built-in panel, the only one there is.
    assert_eq!(screen["placement"], "external", "{seat:#}");
    assert_eq!(screen["sections"], json!(["input.touch"]), "{seat:#}");
    assert_eq!(screen["output"], "Virtual-1", "{seat:#}");
    assert_eq!(
        format!(
            "/dev/input/{}",
            screen["sysname"].as_str().unwrap_or_default()
        ),
        node
    );

    // A finger down at a quarter across and half down: (320, 400) on the screen.
    let event = |kind: &str, code: &str, value: i32| evemu_event(&node, kind, code, value);
    let down = [
        event("EV_ABS", "ABS_MT_SLOT", 0),
        event("EV_ABS", "ABS_MT_TRACKING_ID", 7),
        event("EV_ABS", "ABS_MT_POSITION_X", 1024),
        event("EV_ABS", "ABS_MT_POSITION_Y", 2048),
        event("EV_KEY", "BTN_TOUCH", 1),
        event("EV_ABS", "ABS_X", 1024),
        format!("{} --sync", event("EV_ABS", "ABS_Y", 2048)),
    ];
    let (out, rc) = sh_rc(vm, &down.join(" && "));
    assert_eq!(rc, 0, "evemu-event: {out}");
    wait_inputs(vm, "a finger on the touch screen", |s| {
        let touch = s["touch"].as_array().cloned().unwrap_or_default();
        touch.len() == 1
            && (touch[0]["x"].as_f64().unwrap_or(f64::NAN) - 320.0).abs() < 1.0
            && (touch[0]["y"].as_f64().unwrap_or(f64::NAN) - 400.0).abs() < 1.0
    });
    let up = [
        event("EV_ABS", "ABS_MT_TRACKING_ID", -1),
        format!("{} --sync", event("EV_KEY", "BTN_TOUCH", 0)),
    ];
    let (out, rc) = sh_rc(vm, &up.join(" && "));
    assert_eq!(rc, 0, "evemu-event: {out}");
    wait_inputs(vm, "the finger lifted", |s| {
        s["touch"].as_array().is_some_and(Vec::is_empty)
    });

    // Unplugged: it leaves the seat.
    evemu_unplug(vm, "touchscreen");
    wait_inputs(vm, "the touch screen unplugged", |s| {
        device(s, "tessera-test touchscreen").is_none()
    });

    stylus(vm);
}

/// A stylus plugged in: it drives the pointer on the output it spans, its tip
/// is the left button and its first button the right one.
fn stylus(vm: &mut Vm) {
    let node = evemu_plug(vm, "pen", &PEN);
    let seat = wait_inputs(vm, "the uinput pen", |s| {
        device(s, "tessera-test pen").is_some()
    });
    let pen = device(&seat, "tessera-test pen").unwrap();
    assert_eq!(pen["capabilities"], json!(["tablet-tool"]), "{seat:#}");
    assert_eq!(pen["sections"], json!(["input.tablet"]), "{seat:#}");
    assert_eq!(pen["placement"], "external", "{seat:#}");
    assert_eq!(pen["output"], "Virtual-1", "{seat:#}");
    let event = |kind: &str, code: &str, value: i32| evemu_event(&node, kind, code, value);
    let frame = |vm: &mut Vm, events: &[String]| {
        let mut events = events.to_vec();
        if let Some(last) = events.last_mut() {
            last.push_str(" --sync");
        }
        let (out, rc) = sh_rc(vm, &events.join(" && "));
        assert_eq!(rc, 0, "evemu-event: {out}");
    };
    // Into proximity three quarters across, a quarter down: (960, 200).
    frame(
        vm,
        &[
            event("EV_ABS", "ABS_X", 3072),
            event("EV_ABS", "ABS_Y", 1024),
            event("EV_ABS", "ABS_PRESSURE", 0),
            event("EV_KEY", "BTN_TOOL_PEN", 1),
        ],
    );
    wait_inputs(vm, "the pen in proximity", |s| {
        let (x, y) = pointer(s);
        (x - 960.0).abs() < 1.0 && (y - 200.0).abs() < 1.0 && s["buttons"] == json!([])
    });
    // The tip down, with pressure, moved a little: the left button, held.
    frame(
        vm,
        &[
            event("EV_ABS", "ABS_X", 3200),
            event("EV_ABS", "ABS_PRESSURE", 1500),
            event("EV_KEY", "BTN_TOUCH", 1),
        ],
    );
    wait_inputs(vm, "the pen's tip down", |s| {
        let (x, _) = pointer(s);
        (x - 1000.0).abs() < 1.0 && s["buttons"] == json!([272])
    });
    frame(
        vm,
        &[
            event("EV_ABS", "ABS_PRESSURE", 0),
            event("EV_KEY", "BTN_TOUCH", 0),
        ],
    );
    wait_inputs(vm, "the pen's tip up", |s| s["buttons"] == json!([]));
    // Its first button, hovering: the right button. A real pen streams its
    // position every few ms; libinput takes 50 ms of silence for a pen gone
    // out of range without saying so, and wants motion to bring it back. So
    // the pen moves a little with each button.
    frame(
        vm,
        &[
            event("EV_ABS", "ABS_X", 3216),
            event("EV_KEY", "BTN_STYLUS", 1),
        ],
    );
    wait_inputs(vm, "the pen's button down", |s| {
        s["buttons"] == json!([273])
    });
    frame(
        vm,
        &[
            event("EV_ABS", "ABS_X", 3232),
            event("EV_KEY", "BTN_STYLUS", 0),
        ],
    );
    wait_inputs(vm, "the pen's button up", |s| s["buttons"] == json!([]));
    frame(vm, &[event("EV_KEY", "BTN_TOOL_PEN", 0)]);
    evemu_unplug(vm, "pen");
    wait_inputs(vm, "the pen unplugged", |s| {
        device(s, "tessera-test pen").is_none()
    });
}

/// Makes a uinput device from an evemu description (`/tmp/STEM.evemu`) and
/// returns its event node. The image has no procps: the daemon's pid is kept
/// (`/tmp/STEM.pid`) to stop it. Started from a subshell, it is no job of the
/// console's shell, which would otherwise print its end into the next
/// command's output.
fn evemu_plug(vm: &mut Vm, stem: &str, device: &Evemu) -> String {
    let (out, rc) = sh_rc(
        vm,
        &format!(
            "modprobe uinput && printf '{}' > /tmp/{stem}.evemu",
            device.description().replace('\n', "\\n")
        ),
    );
    assert_eq!(rc, 0, "uinput: {out}");
    sh(
        vm,
        &format!(
            "(nohup evemu-device /tmp/{stem}.evemu > /tmp/{stem}.node 2>&1 & echo $! > /tmp/{stem}.pid)"
        ),
    );
    let mut said = String::new();
    (0..30)
        .find_map(|_| {
            said = sh(vm, &format!("cat /tmp/{stem}.node"));
            let node = said
                .split_whitespace()
                .find(|w| w.starts_with("/dev/input/event"))
                .map(str::to_owned);
            if node.is_none() {
                std::thread::sleep(Duration::from_secs(1));
            }
            node
        })
        .unwrap_or_else(|| panic!("evemu-device named no node for {stem}: {said}"))
}

fn evemu_unplug(vm: &mut Vm, stem: &str) {
    let (out, rc) = sh_rc(vm, &format!("kill $(cat /tmp/{stem}.pid)"));
    assert_eq!(rc, 0, "{out}");
}

fn evemu_event(node: &str, kind: &str, code: &str, value: i32) -> String {
    format!("evemu-event {node} --type {kind} --code {code} --value {value}")
}

/// Ctrl+Alt+F2 at the keyboard leaves the session for tty2 (tessera's `vt 2`
/// binding, through logind), and Ctrl+Alt+F1 there (the kernel console's own
/// binding) comes back. Back on its VT, the session has its devices again
/// with nothing touched, takes keys again, and draws again.
pub fn vt_switch_and_back(vm: &mut Vm) {
    let active = |vm: &mut Vm| sh(vm, "cat /sys/class/tty/tty0/active").trim().to_owned();
    let wait_vt = |vm: &mut Vm, want: &str| {
        let mut seen = String::new();
        let ok = until(30, Duration::from_secs(1), || {
            seen = active(vm);
            seen == want
        });
        assert!(
            ok,
            "the console is on {seen}, not {want}:\n{}",
            sh(
                vm,
                "journalctl -b -o cat SYSLOG_IDENTIFIER=tessera + _SYSTEMD_UNIT=tessera.service | grep -v -e Extensions -e 'GL ' | tail -n 30; journalctl -b -o cat -u systemd-logind | tail -n 5; true"
            )
        );
    };
    assert_eq!(active(vm), "tty1");
    let mut qmp = vm.qmp().unwrap();
    qmp.send_key(&["ctrl", "alt", "f2"]).unwrap();
    wait_vt(vm, "tty2");
    let (paused, _) = sh_rc(
        vm,
        "journalctl -b -o cat SYSLOG_IDENTIFIER=tessera + _SYSTEMD_UNIT=tessera.service | grep -c 'session paused'",
    );
    assert_eq!(paused.trim(), "1", "tessera did not pause");

    qmp.send_key(&["ctrl", "alt", "f1"]).unwrap();
    wait_vt(vm, "tty1");
    let seat = wait_inputs(
        vm,
        "the devices after the session came back",
        has_qemu_devices,
    );
    let mouse = device(&seat, "QEMU Virtio Mouse").unwrap();
    assert_eq!(mouse["accel_speed"], 0.0, "{seat:#}");
    let commits = |vm: &mut Vm| {
        let planes = guest_json(vm, &format!("{MSG} planes"));
        planes["data"]["outputs"][0]["kms"]["commits"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = commits(vm);
    type_into_foot(
        vm,
        &mut qmp,
        "/tmp/typed-after-the-vt-switch",
        "after the VT switch",
    );
    // foot drew what was typed, and the output put it on the screen.
    let drawn = until(30, Duration::from_secs(1), || commits(vm) > before);
    assert!(
        drawn,
        "no commit since the session came back:\n{}",
        sh(vm, &format!("{MSG} planes; true"))
    );
}
