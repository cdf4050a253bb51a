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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;
use tessera_bench_client::ShmWindow;
use wayland_client::Connection;

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
    /// Window 0 commits nothing new each frame (a frame request and an empty
    /// commit), so only the frame cycle is left to measure.
    #[arg(long)]
    first_empty: bool,
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
            empty: false,
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
        empty: args.first_empty,
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
    /// Animate with empty commits (see `Args::first_empty`).
    empty: bool,
    /// Frames to record before reporting (window 0 only).
    frames: usize,
}

fn run_window(
    spec: WindowSpec,
    shared: &Arc<Shared>,
    mut done: Option<mpsc::Sender<Vec<Instant>>>,
) -> anyhow::Result<()> {
    let conn = Connection::connect_to_env().context("connecting to the compositor")?;
    let tint = (spec.index as u32).wrapping_mul(40);
    let app_id = format!("bench-{}", spec.index);
    // Fixed size (min == max): every peer floats it.
    let (mut win, mut queue) = ShmWindow::open(&conn, spec.size, &app_id, tint, true)?;
    let qh = queue.handle();
    // Even a still window wants to know when it was first shown.
    win.draw(&qh, true);
    let mut handled = 0u64;
    let mut stamps = Vec::new();
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
        while handled < win.frames {
            if handled == 0 {
                shared.ready.fetch_add(1, Ordering::SeqCst);
            }
            handled += 1;
            if done.is_some() && shared.measuring.load(Ordering::SeqCst) {
                stamps.push(Instant::now());
                if stamps.len() >= spec.frames
                    && let Some(tx) = done.take()
                {
                    let _ = tx.send(std::mem::take(&mut stamps));
                }
            }
            if spec.animate && spec.empty {
                win.commit_empty(&qh);
            } else if spec.animate {
                win.draw(&qh, true);
            }
        }
    }
    Ok(())
}
