//! The appliance scenario's pieces (`appliance_vm.rs`): versions built and
//! published by osimage, commands typed into the guest, the session's screen, the
//! boot figures and the host-side tamper.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use osimage::disk::{Disk, FileDisk, read_gpt};
use osimage::gpt::PartitionType;
use regex::Regex;
use serde_json::Value;
use tessera_rig::appliance::{self, ApplianceRoot, Binaries, ExtraUnit};
use tessera_rig::picture::Picture;
use tessera_rig::{Artifacts, Vm};

/// The work directory every version is staged, built and published from; one key
/// pair signs them all, as one vendor would.
pub struct Scenario {
    work: tempfile::TempDir,
    app: ApplianceRoot,
    bins: Binaries,
}

impl Scenario {
    pub fn new() -> Scenario {
        let osimage = PathBuf::from(env!("CARGO_BIN_EXE_osimage"));
        let tessera = osimage.with_file_name("tessera");
        assert!(
            tessera.is_file(),
            "{} is not built: run the workspace's tests (`cargo xtask test`)",
            tessera.display()
        );
        let art = Artifacts::ensure().unwrap();
        Scenario {
            work: tempfile::tempdir().unwrap(),
            app: ApplianceRoot::ensure(&art).unwrap(),
            bins: Binaries {
                tessera: Some(tessera),
                osimage,
            },
        }
    }

    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    /// `osimage build` of version `version` (plus `extra` units); returns the image.
    pub fn build(&self, version: &str, extra: &[ExtraUnit]) -> PathBuf {
        let definition =
            appliance::stage(&self.app, self.dir(), version, &self.bins, extra).unwrap();
        let image = self.dir().join(format!("tessera_{version}.img"));
        appliance::build_image(&self.bins.osimage, &definition, &image).unwrap();
        image
    }

    /// The staged /usr tree of `version` (what its usr partition was packed from).
    pub fn usr_tree(&self, version: &str) -> PathBuf {
        self.dir().join(version).join("build/usr")
    }

    /// `osimage publish` of `image` into `dir`, signed with the vendor key; the
    /// image goes once published (see `make_disk`).
    pub fn publish(&self, image: PathBuf, dir: &Path) {
        let keys = self.dir().join("keys");
        let out = Command::new(&self.bins.osimage)
            .arg("publish")
            .arg(dir)
            .arg("--image")
            .arg(&image)
            .arg("--key")
            .arg(keys.join("verity.key"))
            .arg("--cert")
            .arg(keys.join("verity.crt"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "osimage publish: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(&image).unwrap();
    }
}

/// The image on an 8 GiB disk: firstboot fills the rest. The image goes once
/// copied, so that the scenario holds one disk and one publication rather than
/// also three 1.4 GB images, on a machine whose disk also carries the build and
/// the cached distribution.
pub fn make_disk(image: PathBuf, disk: &Path) {
    appliance::make_disk(&image, disk, 8 << 30).unwrap();
    std::fs::remove_file(&image).unwrap();
}

/// `tessera msg` at the session's socket, as root on the console.
pub const MSG: &str =
    "tessera msg --json --socket \"$(ls /run/user/*/tessera-wayland-*.sock | head -n1)\"";

/// Asks `ok` up to `tries` times, `every` apart, until it says yes.
pub fn until(tries: u32, every: Duration, mut ok: impl FnMut() -> bool) -> bool {
    (0..tries).any(|_| {
        ok() || {
            std::thread::sleep(every);
            false
        }
    })
}

/// Runs `command` in the guest; returns its output and exit status.
pub fn sh_rc(vm: &mut Vm, command: &str) -> (String, i32) {
    vm.shell(command, Duration::from_secs(600)).unwrap()
}

/// Runs `command` in the guest and returns its output; a non-zero exit fails.
pub fn sh(vm: &mut Vm, command: &str) -> String {
    let (out, rc) = sh_rc(vm, command);
    assert_eq!(rc, 0, "`{command}` failed in the guest:\n{out}");
    out
}

/// Runs `command` in the guest and parses its output as JSON.
pub fn json(vm: &mut Vm, command: &str) -> Value {
    let out = sh(vm, command);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("`{command}`: {e}:\n{out}"))
}

/// A picture of the session described by its dominant colour and what differs
/// from it: a terminal's text and cursor.
struct Looks {
    colour: [u8; 3],
    share: f64,
    text: f64,
    bounds: Option<(u32, u32, u32, u32)>,
}

impl Looks {
    fn of(picture: &Picture) -> Looks {
        let (colour, share) = picture.dominant();
        Looks {
            colour,
            share,
            text: picture.share_unlike(colour, 60) * f64::from(picture.width * picture.height),
            bounds: picture.bounds_unlike(colour, 60),
        }
    }
}

impl std::fmt::Display for Looks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} of the screen is {:02x?}, {} pixels differ within {:?}",
            self.share, self.colour, self.text, self.bounds
        )
    }
}

/// `tessera msg screenshot` in the guest (`msg` without `--json`), carried out
/// through the console as base64 and described as QEMU's scanout is.
fn tessera_screenshot(vm: &mut Vm, text: &str, when: &str) -> String {
    use base64::Engine as _;
    let (out, rc) = sh_rc(
        vm,
        &format!(
            "{text} screenshot /tmp/tessera-shot.png >/dev/null && base64 -w0 /tmp/tessera-shot.png; echo"
        ),
    );
    let encoded: String = out.split_whitespace().last().unwrap_or_default().to_owned();
    let Ok(png) = base64::engine::general_purpose::STANDARD.decode(encoded.as_bytes()) else {
        return format!("none (rc {rc}): {out}");
    };
    let keep = std::env::temp_dir().join(format!(
        "tessera-appliance-{}-tessera.png",
        when.replace(' ', "-")
    ));
    if std::fs::write(&keep, &png).is_err() {
        return format!("cannot write {}", keep.display());
    }
    match Picture::read_png(&keep) {
        Ok(picture) => format!("{} (in {})", Looks::of(&picture), keep.display()),
        Err(e) => format!("unreadable PNG ({e:?})"),
    }
}

/// The session: tessera.service on tty1 (a logind session through PAM, the seat
/// through libseat), the kms backend on virtio-gpu, foot autostarted and
/// maximized. What QEMU scans out is checked against foot's configured colours,
/// and `msg planes` says what the commits put on the primary plane.
pub fn foot_on_screen(vm: &mut Vm, when: &str) {
    let msg = MSG;
    let windows = until(120, Duration::from_secs(2), || {
        let (out, rc) = sh_rc(vm, &format!("{msg} windows"));
        rc == 0 && out.contains("\"foot\"")
    });
    assert!(
        windows,
        "{when}: no foot window in the session:\n{}",
        sh(
            vm,
            "systemctl status tessera.service --no-pager; journalctl -b -o cat SYSLOG_IDENTIFIER=tessera + _SYSTEMD_UNIT=tessera.service | tail -n 80; true"
        )
    );
    let version = json(vm, &format!("{msg} version"));
    assert_eq!(version["data"]["backend"], "kms", "{version}");
    // Type=notify: the unit is started only once tessera said READY=1, and its
    // status is what it said then.
    let unit = sh(
        vm,
        "systemctl show -p ActiveState -p SubState -p StatusText tessera.service",
    );
    for want in [
        "ActiveState=active",
        "SubState=running",
        "StatusText=WAYLAND_DISPLAY=wayland-",
    ] {
        assert!(unit.contains(want), "{when}: tessera.service: {unit}");
    }

    // foot maps its window before the shell has printed its prompt: look again
    // until the prompt is on the screen too.
    let foot_background = [0x20, 0x30, 0x40];
    let mut seen = String::new();
    let keep =
        std::env::temp_dir().join(format!("tessera-appliance-{}.png", when.replace(' ', "-")));
    let shown = (0..90).any(|i| {
        std::thread::sleep(Duration::from_secs(2));
        let shot = vm.screendump(&format!("session-{i}.png")).unwrap();
        let _ = std::fs::copy(&shot, &keep);
        let picture = Picture::read_png(&shot).unwrap();
        assert_eq!((picture.width, picture.height), (1280, 800));
        let looks = Looks::of(&picture);
        seen = format!("{looks} (in {})", keep.display());
        let Looks {
            colour,
            share,
            text,
            bounds,
        } = looks;
        // foot's maximized window is the screen (its configured background, no
        // border, no other colour anywhere), and what differs is the prompt and the
        // cursor in the first cells of the first line, where a maximized terminal at
        // the origin puts them.
        colour
            .iter()
            .zip(foot_background)
            .all(|(a, b)| a.abs_diff(b) <= 2)
            && share > 0.8
            && text >= 50.0
            && bounds.is_some_and(|(x0, y0, x1, y1)| x0 < 8 && y0 < 8 && x1 < 64 && y1 < 32)
    });
    if !shown {
        // Whether frames still go out (commits rising), where the focus is, and
        // what each thread of foot, its shell and tessera waits in (the image has
        // no procps: /proc is read directly).
        let text = msg.replace(" --json", "");
        let state = sh(
            vm,
            &format!(
                "{text} windows; {text} planes; sleep 2; {text} windows; {text} planes; for t in /proc/[0-9]*/task/[0-9]*; do c=$(cat $t/comm 2>/dev/null); case \"$c\" in foot*|bash|sh|tessera*) echo \"$t $c $(cut -d' ' -f3 $t/stat) $(cat $t/wchan)\"; cat $t/stack 2>/dev/null | head -n 4;; esac; done; true"
            ),
        );
        // What tessera itself would put on the screen now, read back from its
        // renderer: the same as QEMU's scanout means foot never drew more; a
        // prompt here but not there means the frame never reached the display.
        let own = tessera_screenshot(vm, &text, when);
        // The kernel's view of the plane, then a frame forced by typing into
        // foot: whether the scanout catches up once something else changes.
        let kms_state = sh(
            vm,
            "mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null; grep -A12 -e 'plane\\[31\\]' /sys/kernel/debug/dri/0/state; true",
        );
        let _ = sh_rc(vm, &format!("{text} type x; sleep 3"));
        let shot = vm.screendump("session-after-typing.png").unwrap();
        let after_typing = Looks::of(&Picture::read_png(&shot).unwrap());
        let journal = sh(
            vm,
            "systemd-cgls --no-pager -u tessera.service; journalctl -b -o short-monotonic SYSLOG_IDENTIFIER=tessera + _SYSTEMD_UNIT=tessera.service | grep -v -e Extensions -e \"GL V\" -e \"GL R\" | tail -n 100; journalctl -b -o short-monotonic -u systemd-logind | tail -n 20; true",
        );
        panic!(
            "{when}: the screen is not foot's maximized window with a prompt: {seen}\ntessera's own screenshot: {own}\nQEMU's scanout after typing `x`: {after_typing}\nkernel plane state: {kms_state}\n{state}\n{journal}"
        );
    }
    eprintln!("{when}: the session as QEMU scanned it out: {seen}");

    let planes = json(vm, &format!("{msg} planes"));
    let data = &planes["data"];
    assert_eq!(data["source"], "virtio_gpu", "{planes}");
    let output = &data["outputs"][0];
    assert_eq!(output["output"], "Virtual-1", "{planes}");
    let kms = &output["kms"];
    let count = |k: &str| kms[k].as_u64().unwrap_or(0);
    assert!(count("commits") > 0, "{planes}");
    assert_eq!(
        count("primary_swapchain") + count("primary_client"),
        count("commits"),
        "every commit carries the primary plane: {planes}"
    );
    assert_eq!(count("failed"), 0, "{planes}");

    // An idle session draws nothing: with nothing changing, an output neither
    // commits nor checks for damage (it checked 60 times a second when it
    // polled). The allowance covers a late frame of foot's and the `msg` calls.
    let looks = |planes: &Value| {
        let kms = &planes["data"]["outputs"][0]["kms"];
        kms["commits"].as_u64().unwrap_or(0) + kms["empty"].as_u64().unwrap_or(0)
    };
    sh(vm, "sleep 3");
    let idle = json(vm, &format!("{msg} planes"));
    assert!(
        looks(&idle) - looks(&planes) < 20,
        "{when}: the output kept drawing while nothing changed for 3 s:\n{planes}\n{idle}"
    );
    let text = msg.replace(" --json", "");
    eprintln!("{when}: {}", sh(vm, &format!("{text} planes")));
}

/// Where one boot's time went, in seconds. Firmware is the host's clock from power
/// on (or the reset) minus the guest's uptime; kernel, initrd and userspace are
/// systemd's own timestamps; the first frame is Tessera's journal line.
#[derive(Debug, Clone)]
pub struct BootFigures {
    pub label: String,
    /// None when the reset's moment was not seen (the kernel's last line lost).
    pub firmware: Option<f64>,
    pub kernel: f64,
    pub initrd: f64,
    pub userspace: f64,
    /// From the switch to the real root to Tessera's first committed frame.
    pub to_first_frame: Option<f64>,
}

impl BootFigures {
    pub fn read(vm: &mut Vm, label: &str) -> BootFigures {
        let before = vm.boot_elapsed();
        let uptime = sh(vm, "cut -d' ' -f1 /proc/uptime");
        let after = vm.boot_elapsed();
        let host = (before + after).as_secs_f64() / 2.0;
        let uptime: f64 = uptime.trim().parse().unwrap();
        let props = sh(
            vm,
            "systemctl show -p InitRDTimestampMonotonic -p UserspaceTimestampMonotonic -p FinishTimestampMonotonic",
        );
        let prop = |name: &str| -> f64 {
            props
                .lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse::<f64>().ok())
                .map(|us| us / 1e6)
                .unwrap_or_else(|| panic!("no {name} in {props}"))
        };
        let (initrd_at, userspace_at, finish_at) = (
            prop("InitRDTimestampMonotonic"),
            prop("UserspaceTimestampMonotonic"),
            prop("FinishTimestampMonotonic"),
        );
        // The session may still be starting when the console's login is done.
        let stamp = Regex::new(r"^\[\s*([0-9.]+)\]").unwrap();
        let to_first_frame = (0..45).find_map(|_| {
            let frame = sh(
                vm,
                "journalctl -b -o short-monotonic -t tessera | grep -m1 'first frame committed'; true",
            );
            let at = stamp
                .captures(frame.trim())
                .and_then(|c| c[1].parse::<f64>().ok());
            if at.is_none() {
                std::thread::sleep(Duration::from_secs(2));
            }
            at.map(|at| at - userspace_at)
        });
        let figures = BootFigures {
            label: label.to_owned(),
            firmware: vm.boot_start_known().then_some(host - uptime),
            kernel: initrd_at,
            initrd: userspace_at - initrd_at,
            userspace: finish_at - userspace_at,
            to_first_frame,
        };
        eprintln!("boot figures: {figures:?}");
        figures
    }

    pub fn table(all: &[BootFigures]) -> String {
        let mut out = String::from(
            "| boot | firmware + loader | kernel | initrd | userspace (boot finished) | userspace to first frame |\n|---|---|---|---|---|---|\n",
        );
        for f in all {
            out.push_str(&format!(
                "| {} | {} | {:.1} | {:.1} | {:.1} | {} |\n",
                f.label,
                f.firmware
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}")),
                f.kernel,
                f.initrd,
                f.userspace,
                f.to_first_frame
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"))
            ));
        }
        out
    }
}

/// Flips one byte of `file`'s data where it lies in the usr partition labelled
/// `label` on `disk`; returns the byte's offset on the disk. The file's first
/// block is found by content (erofs is built uncompressed, so it is there as is).
pub fn flip_file_byte(disk: &Path, label: &str, file: &Path) -> u64 {
    let content = std::fs::read(file).unwrap();
    let needle = &content[..4096.min(content.len())];
    let mut dev = FileDisk::open(disk).unwrap();
    let gpt = read_gpt(&dev).unwrap();
    let part = gpt
        .partitions
        .iter()
        .find(|p| p.kind == PartitionType::Usr && p.label == label)
        .unwrap_or_else(|| panic!("no usr partition {label} on {}", disk.display()));
    let start = part.first_lba * u64::from(gpt.sector_size);
    let len = (part.last_lba + 1 - part.first_lba) * u64::from(gpt.sector_size);
    let mut bytes = vec![0u8; usize::try_from(len).unwrap()];
    dev.read_at(start, &mut bytes).unwrap();
    let found = memchr::memmem::find(&bytes, needle)
        .unwrap_or_else(|| panic!("{} is not in {label} as is", file.display()));
    let at = start + found as u64 + 100;
    let mut byte = [0u8];
    dev.read_at(at, &mut byte).unwrap();
    dev.write_at(at, &[byte[0] ^ 0xff]).unwrap();
    at
}
