//! A QEMU guest: q35 under TCG, with OVMF or direct kernel boot, virtio disks, an
//! optional vTPM and virtio-gpu, its serial console in a log file and a QMP socket.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use regex::Regex;
use tempfile::TempDir;

use crate::process::{Service, wait_until};
use crate::qmp::Qmp;
use crate::{Result, RigError, Swtpm, io_err, which};

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// How the guest starts.
#[derive(Debug, Clone)]
pub enum Boot {
    /// `-kernel/-initrd/-append`, through SeaBIOS unless `ovmf` is set.
    Direct {
        kernel: PathBuf,
        initrd: PathBuf,
        cmdline: String,
    },
    /// Through the UEFI firmware from the first disk (systemd-boot, UKIs).
    Firmware,
}

#[derive(Debug, Clone)]
pub struct VmConfig {
    pub boot: Boot,
    /// Use OVMF. Always true for [`Boot::Firmware`].
    pub ovmf: bool,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Raw disk images, attached as virtio-blk in this order (vda, vdb, …).
    pub disks: Vec<PathBuf>,
    /// A `-device virtio-gpu-pci` with this resolution.
    pub gpu: Option<(u32, u32)>,
    /// The control socket of a [`Swtpm::unix`], attached as tpm-crb.
    pub tpm_socket: Option<PathBuf>,
    /// systemd credentials passed as SMBIOS type 11 strings (`name=value`).
    pub credentials: Vec<String>,
    /// A console that can be typed into ([`Vm::send`]); otherwise output only.
    pub typed_console: bool,
    /// QEMU user networking (virtio-net): the guest reaches the host's loopback
    /// at 10.0.2.2.
    pub user_net: bool,
    /// virtio keyboard, mouse and tablet, driven through QMP (`Qmp::send_key`,
    /// `Qmp::input_events`) as a person at the machine would.
    pub input: bool,
}

impl VmConfig {
    pub fn direct(kernel: &Path, initrd: &Path, cmdline: &str) -> VmConfig {
        VmConfig {
            boot: Boot::Direct {
                kernel: kernel.to_owned(),
                initrd: initrd.to_owned(),
                cmdline: cmdline.to_owned(),
            },
            ovmf: false,
            memory_mib: 1024,
            cpus: 1,
            disks: Vec::new(),
            gpu: None,
            tpm_socket: None,
            credentials: Vec::new(),
            typed_console: false,
            user_net: false,
            input: false,
        }
    }

    pub fn firmware(disk: &Path) -> VmConfig {
        VmConfig {
            boot: Boot::Firmware,
            ovmf: true,
            memory_mib: 2048,
            cpus: 2,
            disks: vec![disk.to_owned()],
            gpu: None,
            tpm_socket: None,
            credentials: Vec::new(),
            typed_console: false,
            user_net: false,
            input: false,
        }
    }

    pub fn with_tpm(mut self, tpm: &Swtpm) -> VmConfig {
        self.tpm_socket = tpm.socket().map(Path::to_owned);
        self
    }

    pub fn with_gpu(mut self, width: u32, height: u32) -> VmConfig {
        self.gpu = Some((width, height));
        self
    }

    /// A systemd system credential (`io.systemd.credential:NAME=VALUE`), which PID 1
    /// imports from SMBIOS: e.g. `passwd.plaintext-password.root` for sysusers.
    pub fn with_credential(mut self, name: &str, value: &str) -> VmConfig {
        self.credentials.push(format!("{name}={value}"));
        self
    }

    /// The console also on a socket, for [`Vm::send`], [`Vm::login`] and [`Vm::shell`].
    pub fn with_typed_console(mut self) -> VmConfig {
        self.typed_console = true;
        self
    }

    /// A virtio-net NIC on QEMU's user network: no host setup, and the guest sees
    /// the host's 127.0.0.1 as 10.0.2.2 (how it reaches the rig's nginx).
    pub fn with_user_net(mut self) -> VmConfig {
        self.user_net = true;
        self
    }

    /// A virtio keyboard, a relative mouse and an absolute tablet: the guest's
    /// libinput sees three devices, and QMP events reach them.
    pub fn with_input(mut self) -> VmConfig {
        self.input = true;
        self
    }

    pub fn with_disk(mut self, disk: &Path) -> VmConfig {
        self.disks.push(disk.to_owned());
        self
    }

    /// The QEMU arguments for this config; `dir` holds the VARS copy, serial log and
    /// QMP socket.
    pub fn qemu_args(&self, dir: &Path) -> Vec<String> {
        let mut a: Vec<String> = [
            "-machine",
            "q35",
            "-accel",
            "tcg",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ]
        .map(String::from)
        .to_vec();
        a.extend(["-nic".into(), nic(self.user_net).into()]);
        a.extend(["-m".into(), self.memory_mib.to_string()]);
        // An entropy source from the first second: TCG's default CPU has no RDRAND,
        // and a blocking getrandom() in the initrd (firstboot's LUKS keys) otherwise
        // waits on the kernel's jitter loop, which once left the guest in a 400 s
        // soft lockup. The device has no option ROM, so no PCR measures it.
        a.extend(["-device".into(), "virtio-rng-pci".into()]);
        a.extend(["-smp".into(), self.cpus.to_string()]);
        // A typed console is a socket the rig reads and writes; the rig writes the log
        // itself (see `Vm::start`). QEMU's own `logfile=` repeated bytes whenever a
        // socket write was partial, which garbled JSON read off the console (seen).
        // `wait=on`: the guest starts only once the rig is connected, so nothing is
        // lost and nobody stalls it.
        if self.typed_console {
            a.extend([
                "-chardev".into(),
                format!(
                    "socket,id=ser0,path={},server=on,wait=on",
                    dir.join("serial.sock").display()
                ),
                "-serial".into(),
                "chardev:ser0".into(),
            ]);
        } else {
            a.extend([
                "-serial".into(),
                format!("file:{}", dir.join("serial.log").display()),
            ]);
        }
        for cred in &self.credentials {
            a.extend([
                "-smbios".into(),
                format!("type=11,value=io.systemd.credential:{cred}"),
            ]);
        }
        a.extend([
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", dir.join("qmp.sock").display()),
        ]);
        if self.ovmf || matches!(self.boot, Boot::Firmware) {
            a.extend([
                "-drive".into(),
                format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
                "-drive".into(),
                format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    dir.join("OVMF_VARS.fd").display()
                ),
            ]);
        }
        if let Boot::Direct {
            kernel,
            initrd,
            cmdline,
        } = &self.boot
        {
            a.extend(["-kernel".into(), kernel.display().to_string()]);
            a.extend(["-initrd".into(), initrd.display().to_string()]);
            a.extend(["-append".into(), cmdline.clone()]);
            // A kernel panic or reboot ends a direct-boot test instead of looping.
            a.push("-no-reboot".into());
        }
        for (i, disk) in self.disks.iter().enumerate() {
            a.extend([
                "-drive".into(),
                format!("if=none,id=disk{i},format=raw,file={}", disk.display()),
                "-device".into(),
                format!("virtio-blk-pci,drive=disk{i},bootindex={i}"),
            ]);
        }
        if let Some((w, h)) = self.gpu {
            a.extend([
                "-device".into(),
                format!("virtio-gpu-pci,xres={w},yres={h}"),
            ]);
        }
        if self.input {
            for device in [
                "virtio-keyboard-pci",
                "virtio-mouse-pci",
                "virtio-tablet-pci",
            ] {
                a.extend(["-device".into(), device.into()]);
            }
        }
        if let Some(sock) = &self.tpm_socket {
            a.extend([
                "-chardev".into(),
                format!("socket,id=chrtpm,path={}", sock.display()),
                "-tpmdev".into(),
                "emulator,id=tpm0,chardev=chrtpm".into(),
                "-device".into(),
                "tpm-crb,tpmdev=tpm0".into(),
            ]);
        }
        a
    }
}

fn nic(user_net: bool) -> &'static str {
    if user_net {
        "user,model=virtio-net-pci"
    } else {
        "none"
    }
}

/// A running guest. Killed on drop.
#[derive(Debug)]
pub struct Vm {
    service: Service,
    dir: TempDir,
    started: Instant,
    console: Option<std::os::unix::net::UnixStream>,
    commands: u32,
    /// Where the current boot's console output starts: a reboot keeps the log,
    /// and what an earlier boot printed must not satisfy a wait.
    boot_from: usize,
    boot_started: Instant,
    boot_start_known: bool,
}

impl Vm {
    pub fn start(config: &VmConfig) -> Result<Vm> {
        let dir = tempfile::Builder::new()
            .prefix("tessera-vm-")
            .tempdir()
            .map_err(io_err("vm dir"))?;
        if config.ovmf || matches!(config.boot, Boot::Firmware) {
            // Each guest gets its own NVRAM: boot entries and counters it writes must
            // not leak into other tests.
            std::fs::copy(OVMF_VARS, dir.path().join("OVMF_VARS.fd"))
                .map_err(io_err(format!("copy {OVMF_VARS}")))?;
        }
        let mut cmd = Command::new(which("qemu-system-x86_64")?);
        cmd.args(config.qemu_args(dir.path()));
        let mut service = Service::spawn("qemu", cmd, &dir.path().join("qemu.log"))?;
        let console = if config.typed_console {
            Some(connect_console(dir.path(), &mut service)?)
        } else {
            None
        };
        let qmp = dir.path().join("qmp.sock");
        let up = wait_until(Duration::from_secs(20), || {
            qmp.exists() || !service.is_running()
        });
        if !up || !service.is_running() {
            return Err(RigError::NotReady {
                service: "qemu".into(),
                detail: service.log_text(),
            });
        }
        Ok(Vm {
            service,
            dir,
            started: Instant::now(),
            console,
            commands: 0,
            boot_from: 0,
            boot_started: Instant::now(),
            boot_start_known: true,
        })
    }

    /// Everything the guest wrote to its serial console so far.
    pub fn serial(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.serial_path()).unwrap_or_default()).into_owned()
    }

    pub fn serial_path(&self) -> PathBuf {
        self.dir.path().join("serial.log")
    }

    /// Waits for a serial console line matching `pattern` and returns it. On timeout
    /// or guest exit the error carries the console's tail.
    pub fn wait_for_line(&mut self, pattern: &str, timeout: Duration) -> Result<String> {
        let re = Regex::new(pattern).map_err(|e| RigError::Failed(e.to_string()))?;
        let deadline = Instant::now() + timeout;
        loop {
            let running = self.service.is_running();
            let serial = self.boot_serial();
            // While the guest runs, its last line may be half written (the file is read
            // as QEMU appends to it): only lines that ended count. Once it has exited,
            // nothing more is coming, so the last line is whole too.
            let complete = match serial.rfind('\n') {
                Some(end) if running => &serial[..end],
                None if running => "",
                _ => serial.as_str(),
            };
            if let Some(line) = complete.lines().find(|l| re.is_match(l)) {
                return Ok(line.trim_end_matches('\r').to_owned());
            }
            if !running || Instant::now() >= deadline {
                let tail: Vec<&str> = serial.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(RigError::Failed(format!(
                    "no serial line matching /{pattern}/ after {:?} (guest {}); qemu: {}\nconsole tail:\n{}",
                    self.started.elapsed(),
                    if running { "still running" } else { "exited" },
                    self.service.log_text(),
                    tail.join("\n")
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for `needle` anywhere in the console output after byte `from` (prompts
    /// end without a newline, so [`Vm::wait_for_line`] cannot see them). Returns the
    /// offset just past it.
    pub fn wait_for_text(&mut self, needle: &str, from: usize, timeout: Duration) -> Result<usize> {
        self.wait_for_any(&[needle], from, timeout)
            .map(|(_, end)| end)
    }

    /// The first of `needles` to appear after byte `from`: its index and the
    /// offset just past it.
    pub fn wait_for_any(
        &mut self,
        needles: &[&str],
        from: usize,
        timeout: Duration,
    ) -> Result<(usize, usize)> {
        let deadline = Instant::now() + timeout;
        loop {
            let serial = self.serial();
            let tail = serial.get(from..).unwrap_or_default();
            let first = needles
                .iter()
                .enumerate()
                .filter_map(|(i, n)| tail.find(n).map(|at| (at, i, from + at + n.len())))
                .min();
            if let Some((_, i, end)) = first {
                return Ok((i, end));
            }
            if !self.service.is_running() || Instant::now() >= deadline {
                let tail: String = serial
                    .chars()
                    .rev()
                    .take(3000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let wanted = needles.join("\" or \"");
                return Err(RigError::Failed(format!(
                    "no \"{wanted}\" on the console after {:?}; console tail:\n{tail}",
                    self.started.elapsed()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Logs in on the serial console's getty (of the current boot).
    pub fn login(&mut self, user: &str, password: &str, timeout: Duration) -> Result<()> {
        let at = self.wait_for_text(" login: ", self.boot_from, timeout)?;
        self.send(&format!("{user}\n"))?;
        let at = self.wait_for_text("Password: ", at, Duration::from_secs(120))?;
        self.send(&format!("{password}\n"))?;
        // The first login under TCG takes a while (PAM, logind, the shell's start).
        self.wait_for_text("# ", at, Duration::from_secs(300))?;
        // Commands are read by a script: a pager (journalctl and systemctl start
        // one on a terminal when the output is long) would wait for a key forever.
        self.send("export SYSTEMD_PAGER=cat PAGER=cat SYSTEMD_COLORS=0\n")?;
        // The kernel writes its messages to the same serial console; one landing
        // inside a command's output garbles what the rig parses (seen: an hrtimer
        // warning in the middle of `osimage --json` under TCG). Root can quiet it.
        self.send("echo 1 > /proc/sys/kernel/printk 2>/dev/null\n")?;
        Ok(())
    }

    /// Types `text` on the serial console.
    pub fn send(&mut self, text: &str) -> Result<()> {
        use std::io::Write;
        let console = self.console.as_mut().ok_or_else(|| {
            RigError::Failed("the VM has no typed console (VmConfig::with_typed_console)".into())
        })?;
        // A slow guest line discipline drops input that arrives in one burst.
        for chunk in text.as_bytes().chunks(16) {
            console
                .write_all(chunk)
                .map_err(io_err("write the serial console"))?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Runs `command` in the shell logged in on the serial console and returns what
    /// it printed and its exit status. The output is framed by markers the command
    /// line itself cannot match (the echo of the typed line shows `$?`, not a number).
    pub fn shell(&mut self, command: &str, timeout: Duration) -> Result<(String, i32)> {
        self.commands += 1;
        let n = self.commands;
        let before = self.serial().len();
        self.send(&format!(
            "echo TESSERA-CMD-{n}-BEGIN; {command}; echo TESSERA-CMD-{n}-END rc=$?\n"
        ))?;
        // Not anchored: the shell may put control sequences before it. The echo of
        // the typed line cannot match, it shows `$?` where this wants digits.
        let end = format!(r"TESSERA-CMD-{n}-END rc=\d+");
        self.wait_for_line(&end, timeout)?;
        let serial = self.serial();
        let text = serial.get(before..).unwrap_or_default();
        parse_framed(text, n)
            .ok_or_else(|| RigError::Failed(format!("command {n} output not framed:\n{text}")))
    }

    /// Reboots the guest from its shell (`systemctl reboot`: the firmware runs
    /// again, with the same NVRAM, disk and TPM). Waits and logins then only see
    /// what the next boot prints.
    pub fn reboot(&mut self) -> Result<()> {
        let from = self.serial().len();
        self.boot_from = from;
        self.send("systemctl reboot\n")?;
        // The kernel's last word: from here on the time is the next boot's
        // (firmware included), not the shutdown's. That line can be lost: the
        // CPU that restarts stops the others, and one of them may have been
        // the one writing the console (seen once in CI, with the next boot
        // already at its login prompt). The next kernel's banner then marks
        // the boot, and its firmware time is unknown.
        let (which, at) = self.wait_for_any(
            &["reboot: Restarting system", "Linux version "],
            from,
            Duration::from_secs(300),
        )?;
        self.boot_from = at;
        self.boot_started = Instant::now();
        self.boot_start_known = which == 0;
        if which != 0 {
            tracing::warn!(
                "the kernel's last line before the reboot was lost; the next boot's firmware time is unknown"
            );
        }
        Ok(())
    }

    /// Whether [`Vm::boot_elapsed`] counts from the reset (false after a
    /// reboot whose last console line was lost).
    pub fn boot_start_known(&self) -> bool {
        self.boot_start_known
    }

    /// Time since the current boot began (QEMU's start or the last reboot).
    pub fn boot_elapsed(&self) -> Duration {
        self.boot_started.elapsed()
    }

    /// The console output of the current boot.
    pub fn boot_serial(&self) -> String {
        self.serial()
            .get(self.boot_from..)
            .unwrap_or_default()
            .to_owned()
    }

    /// A fresh QMP connection.
    pub fn qmp(&self) -> Result<Qmp> {
        Qmp::connect(&self.dir.path().join("qmp.sock"))
    }

    /// Screendump into this VM's directory; returns the PNG's path.
    pub fn screendump(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        self.qmp()?.screendump(&path)?;
        Ok(path)
    }

    /// ACPI power button.
    pub fn powerdown(&self) -> Result<()> {
        self.qmp()?.powerdown()
    }

    /// Waits for QEMU to exit (the guest powered off). Returns whether it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        self.service.wait_exit(timeout).is_some()
    }

    pub fn is_running(&mut self) -> bool {
        self.service.is_running()
    }

    /// Time since QEMU started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Connects to a typed console's socket and copies everything the guest writes to
/// `serial.log`, which [`Vm::serial`] reads like the plain-file console's.
fn connect_console(dir: &Path, qemu: &mut Service) -> Result<std::os::unix::net::UnixStream> {
    use std::io::{Read, Write};
    let path = dir.join("serial.sock");
    let mut stream = None;
    wait_until(Duration::from_secs(20), || {
        stream = std::os::unix::net::UnixStream::connect(&path).ok();
        stream.is_some() || !qemu.is_running()
    });
    let stream = stream.ok_or_else(|| RigError::NotReady {
        service: "qemu console".into(),
        detail: qemu.log_text(),
    })?;
    let mut reader = stream
        .try_clone()
        .map_err(io_err("clone the console socket"))?;
    let log = dir.join("serial.log");
    let mut file =
        std::fs::File::create(&log).map_err(io_err(format!("create {}", log.display())))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || file.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    Ok(stream)
}

/// What a console line shows: after its last carriage return, without the control
/// sequences (bash's bracketed-paste switches, colours).
fn console_text(line: &str) -> String {
    let line = line.trim_end_matches('\r');
    let line = line.rsplit('\r').next().unwrap_or_default();
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The output between `TESSERA-CMD-n-BEGIN` and `TESSERA-CMD-n-END rc=N` lines.
pub fn parse_framed(text: &str, n: u32) -> Option<(String, i32)> {
    let begin = format!("TESSERA-CMD-{n}-BEGIN");
    let end = format!("TESSERA-CMD-{n}-END rc=");
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines().map(console_text) {
        if line == begin {
            inside = true;
        } else if let Some(rc) = line.strip_prefix(&end).filter(|_| inside) {
            return Some((out.join("\n"), rc.trim().parse().ok()?));
        } else if inside {
            out.push(line);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guest_gets_an_entropy_device() {
        let args = VmConfig::firmware(Path::new("/tmp/x/disk.img")).qemu_args(Path::new("/tmp/x"));
        let at = args.iter().position(|a| a == "virtio-rng-pci");
        assert!(at.is_some_and(|i| args[i - 1] == "-device"), "{args:?}");
    }

    #[test]
    fn input_devices_are_there_only_when_asked_for() {
        let plain = VmConfig::firmware(Path::new("/tmp/x/disk.img"));
        let args = plain.qemu_args(Path::new("/tmp/x"));
        assert!(!args.iter().any(|a| a.starts_with("virtio-keyboard")));
        let args = plain.with_input().qemu_args(Path::new("/tmp/x"));
        for device in [
            "virtio-keyboard-pci",
            "virtio-mouse-pci",
            "virtio-tablet-pci",
        ] {
            let at = args.iter().position(|a| a == device);
            assert!(at.is_some_and(|i| args[i - 1] == "-device"), "{args:?}");
        }
    }

    #[test]
    fn framed_output_skips_the_echoed_command_line() {
        let text = "root@t:~# echo TESSERA-CMD-3-BEGIN; cat x; echo TESSERA-CMD-3-END rc=$?\r\n\
                    \u{1b}[?2004l\rTESSERA-CMD-3-BEGIN\r\nline one\r\nline \u{1b}[1mtwo\u{1b}[0m\r\n\
                    TESSERA-CMD-3-END rc=2\r\n\u{1b}[?2004hroot@t:~# ";
        assert_eq!(
            parse_framed(text, 3),
            Some(("line one\nline two".to_owned(), 2))
        );
        assert_eq!(parse_framed(text, 4), None);
    }
}
