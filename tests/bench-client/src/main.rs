//! The client side of `cargo xtask bench compositor`.
//!
//! Opens N xdg toplevels, one Wayland connection (and thread) each, all with a
//! fixed size so that every compositor floats them rather than tiling or
//! maximizing them. Window 0 is mapped last, so it is on top everywhere, and it is
//! the one that counts frames. Every window redraws and commits on each frame
//! callback, or, with `--only-first`, only window 0 does and the rest stay still.
//!
//! The compositor's CPU time is read from `/proc/PID/task/*/schedstat` (nanoseconds
//! on the CPU, every thread) before and after the measured frames, so the number
//! is the same kind of number for every compositor it runs against.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;
use wayland_client::globals::{GlobalListContents, registry_queue_init};
use wayland_client::protocol::{
    wl_buffer::{self, WlBuffer},
    wl_callback::{self, WlCallback},
    wl_compositor::WlCompositor,
    wl_registry::WlRegistry,
    wl_shm::{self, WlShm},
    wl_shm_pool::WlShmPool,
    wl_surface::WlSurface,
};
use wayland_client::{Connection, Dispatch, QueueHandle, delegate_noop};
use wayland_protocols::xdg::shell::client::{
    xdg_surface::{self, XdgSurface},
    xdg_toplevel::{self, XdgToplevel},
    xdg_wm_base::{self, XdgWmBase},
};

#[derive(Debug, Parser)]
#[command(about = "Animated shm windows for the compositor benchmark")]
struct Args {
    /// How many windows (connections).
    #[arg(long, default_value_t = 16)]
    windows: usize,
    /// Size of every window, WxH.
    #[arg(long, default_value = "400x300", value_parser = parse_size)]
    size: (i32, i32),
    /// Size of window 0 (the one that counts frames); defaults to --size.
    #[arg(long, value_parser = parse_size)]
    first_size: Option<(i32, i32)>,
    /// Only window 0 animates; the others commit once and stay still.
    #[arg(long)]
    only_first: bool,
    /// Frames to measure (window 0's frame callbacks).
    #[arg(long, default_value_t = 600)]
    frames: usize,
    /// The compositor's pid, whose CPU time is measured.
    #[arg(long)]
    pid: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

fn parse_size(s: &str) -> Result<(i32, i32), String> {
    let (w, h) = s.split_once('x').ok_or("expected WxH")?;
    let w: i32 = w.parse().map_err(|e| format!("{e}"))?;
    let h: i32 = h.parse().map_err(|e| format!("{e}"))?;
    if w <= 0 || h <= 0 || w > 8192 || h > 8192 {
        return Err("size out of range".into());
    }
    Ok((w, h))
}

#[derive(Debug, Serialize)]
struct Report {
    windows: usize,
    frames: usize,
    wall_s: f64,
    compositor_cpu_ms: f64,
    cpu_per_frame_us: f64,
    frame_ms_p50: f64,
    frame_ms_p99: f64,
}

/// What the window threads share with the main thread.
#[derive(Debug, Default)]
struct Shared {
    /// Windows that have received their first frame callback.
    ready: AtomicUsize,
    /// Window 0 records frame times while this is set.
    measuring: AtomicBool,
    stop: AtomicBool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.windows == 0 || args.frames < 2 {
        bail!("need at least one window and two frames");
    }
    let shared = Arc::new(Shared::default());
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let (done_tx, done_rx) = mpsc::channel::<Vec<Instant>>();
    let mut threads = Vec::new();

    // Windows 1.. first, so that window 0 maps last and on top.
    for i in 1..args.windows {
        let spec = WindowSpec {
            index: i,
            size: args.size,
            animate: !args.only_first,
            frames: 0,
        };
        let shared = shared.clone();
        threads.push(std::thread::spawn(move || run_window(spec, &shared, None)));
    }
    wait_for(&shared, args.windows - 1, deadline)?;
    let spec = WindowSpec {
        index: 0,
        size: args.first_size.unwrap_or(args.size),
        animate: true,
        frames: args.frames,
    };
    let first_shared = shared.clone();
    threads.push(std::thread::spawn(move || {
        run_window(spec, &first_shared, Some(done_tx))
    }));
    wait_for(&shared, args.windows, deadline)?;

    // Let placement animations and first uploads settle before measuring.
    std::thread::sleep(Duration::from_millis(500));
    let cpu0 = cpu_ns(args.pid)?;
    let t0 = Instant::now();
    shared.measuring.store(true, Ordering::SeqCst);
    let left = deadline.saturating_duration_since(Instant::now());
    let stamps = done_rx
        .recv_timeout(left)
        .context("window 0 did not get its frames in time")?;
    let cpu1 = cpu_ns(args.pid)?;
    let wall = t0.elapsed();
    shared.stop.store(true, Ordering::SeqCst);
    for t in threads {
        match t.join() {
            Ok(r) => r?,
            Err(_) => bail!("a window thread panicked"),
        }
    }

    let mut intervals: Vec<f64> = stamps
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    intervals.sort_by(f64::total_cmp);
    let frames = stamps.len();
    let cpu_ms = (cpu1.saturating_sub(cpu0)) as f64 / 1e6;
    let report = Report {
        windows: args.windows,
        frames,
        wall_s: wall.as_secs_f64(),
        compositor_cpu_ms: cpu_ms,
        cpu_per_frame_us: cpu_ms * 1000.0 / frames as f64,
        frame_ms_p50: percentile(&intervals, 50.0),
        frame_ms_p99: percentile(&intervals, 99.0),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn wait_for(shared: &Shared, n: usize, deadline: Instant) -> anyhow::Result<()> {
    while shared.ready.load(Ordering::SeqCst) < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} windows got a first frame callback",
                shared.ready.load(Ordering::SeqCst)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Time on the CPU of every thread of `pid`, in nanoseconds.
fn cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0u64;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = entry?.path().join("schedstat");
        // A thread may exit between the listing and the read.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let ns = text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("parsing {}", path.display()))?;
        total += ns;
    }
    Ok(total)
}

#[derive(Debug, Clone, Copy)]
struct WindowSpec {
    index: usize,
    size: (i32, i32),
    animate: bool,
    /// Frames to record before reporting (window 0 only).
    frames: usize,
}

const BUFFERS: usize = 4;

struct Window {
    spec: WindowSpec,
    shared: Arc<Shared>,
    done: Option<mpsc::Sender<Vec<Instant>>>,
    surface: WlSurface,
    xdg_surface: XdgSurface,
    _toplevel: XdgToplevel,
    pool: memmap2::MmapMut,
    buffers: Vec<WlBuffer>,
    busy: [bool; BUFFERS],
    configured: bool,
    first_frame: bool,
    frame: u32,
    stamps: Vec<Instant>,
    closed: bool,
}

fn run_window(
    spec: WindowSpec,
    shared: &Arc<Shared>,
    done: Option<mpsc::Sender<Vec<Instant>>>,
) -> anyhow::Result<()> {
    let conn = Connection::connect_to_env().context("connecting to the compositor")?;
    let (globals, mut queue) = registry_queue_init::<Window>(&conn)?;
    let qh = queue.handle();
    let compositor: WlCompositor = globals.bind(&qh, 4..=6, ())?;
    let shm: WlShm = globals.bind(&qh, 1..=1, ())?;
    let wm_base: XdgWmBase = globals.bind(&qh, 1..=5, ())?;

    let (w, h) = spec.size;
    let stride = w * 4;
    let len = (stride * h) as usize;
    let file = tempfile::tempfile()?;
    file.set_len((len * BUFFERS) as u64)?;
    // SAFETY: the file is private to this process and outlives the mapping.
    let pool_map = unsafe { memmap2::MmapMut::map_mut(&file)? };
    let pool: WlShmPool = shm.create_pool(file.as_fd(), (len * BUFFERS) as i32, &qh, ());
    let buffers = (0..BUFFERS)
        .map(|i| {
            pool.create_buffer(
                (i * len) as i32,
                w,
                h,
                stride,
                wl_shm::Format::Xrgb8888,
                &qh,
                i,
            )
        })
        .collect();

    let surface = compositor.create_surface(&qh, ());
    let xdg_surface = wm_base.get_xdg_surface(&surface, &qh, ());
    let toplevel = xdg_surface.get_toplevel(&qh, ());
    toplevel.set_title(format!("bench-{}", spec.index));
    toplevel.set_app_id("tessera-bench-client".into());
    // min == max: a fixed-size window, which every peer floats.
    toplevel.set_min_size(w, h);
    toplevel.set_max_size(w, h);
    surface.commit();

    let mut win = Window {
        spec,
        shared: shared.clone(),
        done,
        surface,
        xdg_surface,
        _toplevel: toplevel,
        pool: pool_map,
        buffers,
        busy: [false; BUFFERS],
        configured: false,
        first_frame: false,
        frame: 0,
        stamps: Vec::new(),
        closed: false,
    };
    while !shared.stop.load(Ordering::SeqCst) && !win.closed {
        // Wake up now and then to notice `stop`; still windows get no events.
        conn.flush()?;
        if let Some(guard) = queue.prepare_read() {
            let fd = guard.connection_fd();
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, 100) };
            if n > 0 {
                guard.read()?;
            } else {
                drop(guard);
            }
        }
        queue.dispatch_pending(&mut win)?;
    }
    Ok(())
}

impl Window {
    /// Draws the next frame into a free buffer and commits it with a frame callback.
    fn draw(&mut self, qh: &QueueHandle<Self>) {
        let Some(i) = self.busy.iter().position(|b| !b) else {
            // Every buffer is still held: commit nothing new, but keep the frame loop.
            self.surface.frame(qh, ());
            self.surface.commit();
            return;
        };
        let (w, h) = self.spec.size;
        let len = (w * h * 4) as usize;
        let f = self.frame;
        let colour = 0xff00_0000
            | ((f.wrapping_mul(7) & 0xff) << 16)
            | ((((self.spec.index as u32) * 40) & 0xff) << 8)
            | (f.wrapping_mul(3) & 0xff);
        let bytes = colour.to_ne_bytes();
        for px in self.pool[i * len..(i + 1) * len].chunks_exact_mut(4) {
            px.copy_from_slice(&bytes);
        }
        self.frame = self.frame.wrapping_add(1);
        self.busy[i] = true;
        self.surface.attach(Some(&self.buffers[i]), 0, 0);
        self.surface.damage_buffer(0, 0, w, h);
        if self.spec.animate {
            self.surface.frame(qh, ());
        } else if !self.first_frame {
            // A still window still wants to know when it was first shown.
            self.surface.frame(qh, ());
        }
        self.surface.commit();
    }

    fn on_frame(&mut self, qh: &QueueHandle<Self>) {
        if !self.first_frame {
            self.first_frame = true;
            self.shared.ready.fetch_add(1, Ordering::SeqCst);
        }
        if self.done.is_some() && self.shared.measuring.load(Ordering::SeqCst) {
            self.stamps.push(Instant::now());
            if self.stamps.len() >= self.spec.frames
                && let Some(tx) = self.done.take()
            {
                let _ = tx.send(std::mem::take(&mut self.stamps));
            }
        }
        if self.spec.animate {
            self.draw(qh);
        }
    }
}

impl Dispatch<WlRegistry, GlobalListContents> for Window {
    fn event(
        _: &mut Self,
        _: &WlRegistry,
        _: wayland_client::protocol::wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

delegate_noop!(Window: ignore WlCompositor);
delegate_noop!(Window: ignore WlShm);
delegate_noop!(Window: ignore WlShmPool);
delegate_noop!(Window: ignore WlSurface);

impl Dispatch<WlBuffer, usize> for Window {
    fn event(
        state: &mut Self,
        _: &WlBuffer,
        event: wl_buffer::Event,
        index: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_buffer::Event::Release = event {
            state.busy[*index] = false;
        }
    }
}

impl Dispatch<WlCallback, ()> for Window {
    fn event(
        state: &mut Self,
        _: &WlCallback,
        event: wl_callback::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event {
            state.on_frame(qh);
        }
    }
}

impl Dispatch<XdgWmBase, ()> for Window {
    fn event(
        _: &mut Self,
        wm: &XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            wm.pong(serial);
        }
    }
}

impl Dispatch<XdgSurface, ()> for Window {
    fn event(
        state: &mut Self,
        surface: &XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            surface.ack_configure(serial);
            debug_assert!(&state.xdg_surface == surface);
            if !state.configured {
                state.configured = true;
                state.draw(qh);
            } else {
                state.surface.commit();
            }
        }
    }
}

impl Dispatch<XdgToplevel, ()> for Window {
    fn event(
        state: &mut Self,
        _: &XdgToplevel,
        event: xdg_toplevel::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_toplevel::Event::Close = event {
            state.closed = true;
        }
    }
}
