//! wlr-screencopy from an in-process client: region capture, and the protocol
//! errors a careless or hostile client earns.

use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use wayland_client::protocol::{wl_buffer, wl_shm};
use wayland_client::{Connection, Dispatch, QueueHandle, WEnum};
use wayland_protocols_wlr::screencopy::v1::client::{
    zwlr_screencopy_frame_v1::{self, ZwlrScreencopyFrameV1},
    zwlr_screencopy_manager_v1::ZwlrScreencopyManagerV1,
};

use super::client::{ClientData, TestClient};
use super::fixture::Fixture;

/// What a frame reported: the buffer it wants, then ready or failed.
#[derive(Debug, Default)]
struct FrameLog {
    buffer: Option<(u32, u32, u32)>,
    buffer_done: bool,
    ready: bool,
    failed: bool,
}

type Log = Arc<Mutex<FrameLog>>;

impl Dispatch<ZwlrScreencopyFrameV1, Log> for ClientData {
    fn event(
        _: &mut Self,
        _: &ZwlrScreencopyFrameV1,
        event: zwlr_screencopy_frame_v1::Event,
        log: &Log,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let mut log = log.lock().unwrap();
        match event {
            zwlr_screencopy_frame_v1::Event::Buffer {
                format: WEnum::Value(wl_shm::Format::Xrgb8888),
                width,
                height,
                stride,
            } => log.buffer = Some((width, height, stride)),
            zwlr_screencopy_frame_v1::Event::BufferDone => log.buffer_done = true,
            zwlr_screencopy_frame_v1::Event::Ready { .. } => log.ready = true,
            zwlr_screencopy_frame_v1::Event::Failed => log.failed = true,
            _ => {}
        }
    }
}

impl Dispatch<ZwlrScreencopyManagerV1, ()> for ClientData {
    fn event(
        _: &mut Self,
        _: &ZwlrScreencopyManagerV1,
        _: <ZwlrScreencopyManagerV1 as wayland_client::Proxy>::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

fn manager(c: &TestClient) -> ZwlrScreencopyManagerV1 {
    let (name, _, _) = c
        .data
        .globals
        .iter()
        .find(|g| g.1 == "zwlr_screencopy_manager_v1")
        .cloned()
        .expect("screencopy advertised");
    c.registry.bind(name, 3, &c.qh(), ())
}

/// An XRGB shm buffer of w x h backed by a file the test can read.
fn shm_buffer(c: &TestClient, w: i32, h: i32, stride: i32) -> (wl_buffer::WlBuffer, std::fs::File) {
    let file = tempfile::tempfile().unwrap();
    file.set_len((stride * h) as u64).unwrap();
    let pool = c
        .data
        .shm
        .as_ref()
        .unwrap()
        .create_pool(file.as_fd(), stride * h, &c.qh(), ());
    let buffer = pool.create_buffer(0, w, h, stride, wl_shm::Format::Xrgb8888, &c.qh(), ());
    pool.destroy();
    (buffer, file)
}

#[test]
fn a_region_capture_holds_the_pixels_of_that_region() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    fx.map_toplevel(&mut c, "red", (1280, 720), 0xffff0000);
    let screencopy = manager(&c);
    let log = Log::default();
    let output = c.data.output.clone().unwrap();
    let frame = screencopy.capture_output_region(0, &output, 100, 50, 64, 32, &c.qh(), log.clone());
    fx.roundtrip(&mut c);
    assert_eq!(log.lock().unwrap().buffer, Some((64, 32, 256)));
    assert!(log.lock().unwrap().buffer_done);
    let (buffer, file) = shm_buffer(&c, 64, 32, 256);
    frame.copy(&buffer);
    fx.roundtrip(&mut c);
    assert!(log.lock().unwrap().ready, "{:?}", log.lock().unwrap());
    let bytes = std::fs::read(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&file)
    ))
    .unwrap();
    let shot = fx.screenshot();
    let want = shot.pixel(100 + 10, 50 + 5);
    let i = (5 * 64 + 10) * 4;
    assert_eq!(&bytes[i..i + 3], &[want[2], want[1], want[0]]);
    assert_eq!(&bytes[i..i + 3], &[0, 0, 0xff], "the red window, as XRGB");
}

#[test]
fn a_wrong_buffer_or_a_second_copy_is_a_protocol_error() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let screencopy = manager(&c);
    let output = c.data.output.clone().unwrap();
    let frame = screencopy.capture_output(0, &output, &c.qh(), Log::default());
    fx.roundtrip(&mut c);
    let (small, _f) = shm_buffer(&c, 16, 16, 64);
    frame.copy(&small);
    fx.roundtrip(&mut c);
    let err = c.data.protocol_error.clone().expect("invalid_buffer");
    assert!(err.contains("zwlr_screencopy_frame_v1"), "{err}");

    let (mut c, _) = fx.add_client();
    let screencopy = manager(&c);
    let output = c.data.output.clone().unwrap();
    let log = Log::default();
    let frame = screencopy.capture_output(0, &output, &c.qh(), log.clone());
    fx.roundtrip(&mut c);
    let (w, h, stride) = log.lock().unwrap().buffer.unwrap();
    let (buffer, _f) = shm_buffer(&c, w as i32, h as i32, stride as i32);
    frame.copy(&buffer);
    fx.roundtrip(&mut c);
    assert!(log.lock().unwrap().ready);
    frame.copy(&buffer);
    fx.roundtrip(&mut c);
    let err = c.data.protocol_error.clone().expect("already_used");
    assert!(err.contains("zwlr_screencopy_frame_v1"), "{err}");
}

#[test]
fn a_region_outside_the_output_fails_cleanly() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let screencopy = manager(&c);
    let output = c.data.output.clone().unwrap();
    let log = Log::default();
    let _frame =
        screencopy.capture_output_region(0, &output, 5000, 5000, 10, 10, &c.qh(), log.clone());
    fx.roundtrip(&mut c);
    assert!(log.lock().unwrap().failed);
    assert!(c.data.protocol_error.is_none());
}
