//! A tessera process on a private runtime dir, talked to through its IPC.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tessera::backend::Capture;
use tessera::ipc::proto::{Request, Response};

pub struct Session {
    child: Child,
    pub runtime: tempfile::TempDir,
    pub display: String,
    pub ipc: PathBuf,
    clients: Vec<Child>,
}

impl Session {
    pub fn start(renderer: &str, outputs: &str) -> Session {
        Self::start_with(renderer, outputs, &[])
    }

    pub fn start_with(renderer: &str, outputs: &str, extra: &[&str]) -> Session {
        let runtime = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args([
                "--backend",
                "headless",
                "--renderer",
                renderer,
                "--outputs",
                outputs,
            ])
            .args(["--socket", "wayland-test", "--no-autostart"])
            .args(extra)
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("TESSERA_NO_EXPORT", "1")
            .env("RUST_LOG", "warn")
            .env_remove("WAYLAND_DISPLAY")
            // The config's llvmpipe_threads decides, as in a session.
            .env_remove(tessera::render::llvmpipe::VAR)
            .stdout(Stdio::piped())
            .spawn()
            .expect("tessera starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (mut display, mut ipc) = (None, None);
        while display.is_none() || ipc.is_none() {
            let line = lines.next().expect("tessera prints its sockets").unwrap();
            if let Some(v) = line.strip_prefix("WAYLAND_DISPLAY=") {
                display = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("TESSERA_SOCKET=") {
                ipc = Some(PathBuf::from(v));
            }
        }
        // Keep draining stdout so the compositor never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Session {
            child,
            runtime,
            display: display.unwrap(),
            ipc: ipc.unwrap(),
            clients: Vec::new(),
        }
    }

    pub fn msg(&self, request: Request) -> Response {
        tessera::ipc::client::send(&self.ipc, &request).expect("ipc answers")
    }

    pub fn client(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .env("XDG_RUNTIME_DIR", self.runtime.path())
            .env("WAYLAND_DISPLAY", &self.display)
            .env_remove("DISPLAY")
            .stdin(Stdio::null());
        c
    }

    pub fn spawn(&mut self, program: &str, args: &[&str]) {
        let child = self
            .client(program, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        self.clients.push(child);
    }

    pub fn windows(&self) -> Vec<tessera::ipc::proto::WindowInfo> {
        let r = self.msg(Request::Windows);
        assert!(r.ok, "{r:?}");
        serde_json::from_value(r.data).unwrap()
    }

    /// Waits until `pred` holds on the window list.
    pub fn wait_windows(
        &self,
        what: &str,
        pred: impl Fn(&[tessera::ipc::proto::WindowInfo]) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let w = self.windows();
            if pred(&w) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; windows: {w:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn screenshot(&self, dir: &Path, name: &str) -> Capture {
        let path = dir.join(name);
        let r = self.msg(Request::Screenshot {
            output: None,
            path: path.to_string_lossy().into_owned(),
            cursor: false,
        });
        assert!(r.ok, "{r:?}");
        tessera::screenshot::read_png(&path).unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The compositor's resident set, in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for c in &mut self.clients {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn pixel(c: &Capture, x: u32, y: u32) -> [u8; 4] {
    c.pixel(x, y)
}

/// Pixels in a region that differ by more than `tolerance` in any channel.
pub fn differing(
    a: &Capture,
    b: &Capture,
    x0: u32,
    y0: u32,
    w: u32,
    h: u32,
    tolerance: u8,
) -> usize {
    let mut n = 0;
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            let (p, q) = (pixel(a, x, y), pixel(b, x, y));
            if p.iter()
                .zip(q.iter())
                .any(|(u, v)| u.abs_diff(*v) > tolerance)
            {
                n += 1;
            }
        }
    }
    n
}

pub fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The interfaces `wayland-info` lists, in its order.
pub fn wayland_info_interfaces(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.split("interface: '").nth(1))
        .filter_map(|l| l.split('\'').next())
        .map(String::from)
        .collect()
}
