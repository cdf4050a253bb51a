//! Property tests: random sequences of dmabuf-params, single-pixel-buffer and
//! security-context requests from in-process clients. Whatever they send, the
//! compositor must not panic, a client that errs must get a protocol error (not
//! take anyone down), and a bystander must keep getting frames.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use proptest::prelude::*;
use proptest::sample::select;
use wayland_protocols::wp::linux_dmabuf::zv1::client::zwp_linux_buffer_params_v1::Flags;

use super::client::TestClient;
use super::dmabuf_client::{add_plane, memfd};
use super::fixture::Fixture;
use crate::render::planes::{MOD_INVALID, MOD_LINEAR, fourcc};

#[derive(Debug, Clone, Copy)]
enum FdKind {
    Memfd(u64),
    Pipe,
    Socket,
}

#[derive(Debug, Clone)]
struct PlaneArg {
    fd: FdKind,
    index: u32,
    offset: u32,
    stride: u32,
    modifier: u64,
}

#[derive(Debug, Clone, Copy)]
enum Finish {
    Destroy,
    Create,
    CreateImmed,
    CreateTwice,
}

#[derive(Debug, Clone, Copy)]
enum Listen {
    Listening,
    Bound,
    Pipe,
}

#[derive(Debug, Clone)]
enum Op {
    Params {
        planes: Vec<PlaneArg>,
        create: Finish,
        size: (i32, i32),
        format: u32,
    },
    SinglePixel {
        rgba: [u32; 4],
        destination: Option<(i32, i32)>,
        toplevel: bool,
    },
    Security {
        listen: Listen,
        fields: Vec<u8>,
        commits: u8,
        connect: bool,
        close: bool,
    },
}

fn plane_arg() -> impl Strategy<Value = PlaneArg> {
    let fd = prop_oneof![
        (0u64..70_000).prop_map(FdKind::Memfd),
        Just(FdKind::Pipe),
        Just(FdKind::Socket),
    ];
    let offset = prop_oneof![Just(0u32), 0u32..70_000, Just(u32::MAX)];
    let stride = prop_oneof![Just(64u32), 0u32..5000, Just(u32::MAX)];
    let modifier = select(vec![MOD_LINEAR, MOD_INVALID, 0x0100_0000_0000_0001]);
    (fd, 0u32..6, offset, stride, modifier).prop_map(|(fd, index, offset, stride, modifier)| {
        PlaneArg {
            fd,
            index,
            offset,
            stride,
            modifier,
        }
    })
}

fn op() -> impl Strategy<Value = Op> {
    let create = select(vec![
        Finish::Destroy,
        Finish::Create,
        Finish::CreateImmed,
        Finish::CreateTwice,
    ]);
    let size = (-2i32..40, -2i32..40);
    let format = select(vec![
        fourcc(b"XR24"),
        fourcc(b"AR24"),
        fourcc(b"NV12"),
        0,
        0xdead_beef,
    ]);
    let params = (
        prop::collection::vec(plane_arg(), 0..5),
        create,
        size,
        format,
    )
        .prop_map(|(planes, create, size, format)| Op::Params {
            planes,
            create,
            size,
            format,
        });
    let destination = prop::option::of((-3i32..300, -3i32..300));
    let single = (any::<[u32; 4]>(), destination, any::<bool>()).prop_map(
        |(rgba, destination, toplevel)| Op::SinglePixel {
            rgba,
            destination,
            toplevel,
        },
    );
    let listen = select(vec![Listen::Listening, Listen::Bound, Listen::Pipe]);
    let security = (
        listen,
        prop::collection::vec(0u8..3, 0..5),
        0u8..3,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(listen, fields, commits, connect, close)| Op::Security {
            listen,
            fields,
            commits,
            connect,
            close,
        });
    prop_oneof![params, single, security]
}

fn fd_of(kind: FdKind, keep: &mut Vec<OwnedFd>) -> OwnedFd {
    match kind {
        FdKind::Memfd(size) => memfd(size),
        FdKind::Pipe => {
            let (read, write) = std::io::pipe().unwrap();
            keep.push(write.into());
            read.into()
        }
        FdKind::Socket => {
            let (a, b) = UnixStream::pair().unwrap();
            keep.push(b.into());
            a.into()
        }
    }
}

/// Performs one op as `c`.
fn perform(fx: &mut Fixture, c: &mut TestClient, op: &Op, dir: &std::path::Path) {
    let qh = c.qh();
    let mut keep: Vec<OwnedFd> = Vec::new();
    match op {
        Op::Params {
            planes,
            create,
            size,
            format,
        } => {
            let dmabuf = c.bind_dmabuf();
            let p = dmabuf.create_params(&qh, ());
            for a in planes {
                let fd = fd_of(a.fd, &mut keep);
                add_plane(&p, &fd, a.index, a.offset, a.stride, a.modifier);
            }
            let (w, h) = *size;
            match create {
                Finish::Destroy => p.destroy(),
                Finish::Create => p.create(w, h, *format, Flags::empty()),
                Finish::CreateImmed => {
                    p.create_immed(w, h, *format, Flags::empty(), &qh, ());
                }
                Finish::CreateTwice => {
                    p.create(w, h, *format, Flags::empty());
                    p.create(w, h, *format, Flags::empty());
                }
            }
        }
        Op::SinglePixel {
            rgba,
            destination,
            toplevel,
        } => {
            let spb = c.data.single_pixel.clone().unwrap();
            let buffer = spb.create_u32_rgba_buffer(rgba[0], rgba[1], rgba[2], rgba[3], &qh, ());
            let surface = if *toplevel {
                let t = fx.configured_toplevel(c, "fuzz");
                t.surface
            } else {
                c.data.compositor.clone().unwrap().create_surface(&qh, ())
            };
            if let Some((w, h)) = destination {
                let viewporter = c.data.viewporter.clone().unwrap();
                viewporter
                    .get_viewport(&surface, &qh, ())
                    .set_destination(*w, *h);
            }
            surface.attach(Some(&buffer), 0, 0);
            surface.damage_buffer(0, 0, 1, 1);
            surface.commit();
        }
        Op::Security {
            listen,
            fields,
            commits,
            connect,
            close,
        } => {
            static SOCKETS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = SOCKETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.join(format!("s{n}.sock"));
            let listen_fd: OwnedFd = match listen {
                Listen::Listening => UnixListener::bind(&path).unwrap().into(),
                Listen::Bound => {
                    // A socket that is not listening.
                    let (a, _) = UnixStream::pair().unwrap();
                    a.into()
                }
                Listen::Pipe => fd_of(FdKind::Pipe, &mut keep),
            };
            let (close_ours, close_theirs) = UnixStream::pair().unwrap();
            let manager = c.data.security.clone().unwrap();
            let ctx = manager.create_listener(listen_fd.as_fd(), close_theirs.as_fd(), &qh, ());
            for f in fields {
                match f {
                    0 => ctx.set_sandbox_engine("org.flatpak".into()),
                    1 => ctx.set_app_id("org.example.Fuzz".into()),
                    _ => ctx.set_instance_id("i".into()),
                }
            }
            for _ in 0..*commits {
                ctx.commit();
            }
            fx.roundtrip(c);
            // Only a context the compositor took has someone accepting on it.
            let taken = c.data.protocol_error.is_none();
            if *connect
                && taken
                && matches!(listen, Listen::Listening)
                && *commits > 0
                && let Ok(stream) = UnixStream::connect(&path)
            {
                let mut sandboxed = TestClient::new(stream);
                fx.roundtrip(&mut sandboxed);
            }
            if *close {
                drop(close_ours);
            } else {
                keep.push(close_ours.into());
            }
        }
    }
    fx.roundtrip(c);
}

fn run(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let mut fx = Fixture::new();
    let (mut bystander, _) = fx.add_client();
    let t = fx.map_toplevel(&mut bystander, "bystander", (1280, 720), 0xff10_2030);
    let (mut c, _) = fx.add_client();
    for op in ops {
        perform(&mut fx, &mut c, op, dir.path());
        fx.screenshot();
        if c.data.protocol_error.is_some() {
            // That client is gone; the next op starts on a fresh one.
            c = fx.add_client().0;
        }
    }
    assert!(
        fx.next_frame(&mut bystander, &t.surface),
        "no frame for the bystander"
    );
    assert!(
        bystander.data.protocol_error.is_none(),
        "{:?}",
        bystander.data.protocol_error
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_requests_never_take_the_compositor_or_a_bystander_down(
        ops in prop::collection::vec(op(), 1..8)
    ) {
        run(&ops);
    }
}
