//! wlr-screencopy-unstable-v1 (version 3), into shm buffers: what `grim` uses.
//!
//! smithay 0.7 has no screencopy module, so Tessera serves the protocol itself. A
//! copy renders the output right away through the same path as `tessera msg
//! screenshot`, so both read back identical pixels. The global is in the
//! `screen-capture` privilege class: sandboxed clients do not see it unless a
//! policy rule grants it.

use std::sync::Mutex;

use smithay::output::Output;
use smithay::reexports::wayland_protocols_wlr::screencopy::v1::server::{
    zwlr_screencopy_frame_v1::{self, ZwlrScreencopyFrameV1},
    zwlr_screencopy_manager_v1::{self, ZwlrScreencopyManagerV1},
};
use smithay::reexports::wayland_server::protocol::wl_buffer::WlBuffer;
use smithay::reexports::wayland_server::protocol::wl_shm;
use smithay::reexports::wayland_server::{
    Client, DataInit, Dispatch, DisplayHandle, GlobalDispatch, New, Resource,
};
use smithay::utils::{Physical, Rectangle, Size};

use crate::backend::{Capture, framebuffer_size};
use crate::sandbox::{GlobalFilter, SandboxPolicy};
use crate::state::Tessera;

pub const VERSION: u32 = 3;

/// Creates the global, filtered by the sandbox policy.
pub fn create_global(dh: &DisplayHandle, policy: &SandboxPolicy) {
    let filter = GlobalFilter::new(policy.filter("zwlr_screencopy_manager_v1"));
    dh.create_global::<Tessera, ZwlrScreencopyManagerV1, _>(VERSION, filter);
}

/// One frame object: what it captures, and whether it was used.
pub struct Frame(Mutex<FrameState>);

struct FrameState {
    /// None when the output is gone: every copy then fails.
    output: Option<Output>,
    /// The captured part of the output, in its buffer pixels.
    region: Rectangle<i32, Physical>,
    /// The client asked for the pointer in the frame (`overlay_cursor`).
    cursor: bool,
    used: bool,
}

impl GlobalDispatch<ZwlrScreencopyManagerV1, GlobalFilter> for Tessera {
    fn bind(
        _state: &mut Self,
        _dh: &DisplayHandle,
        _client: &Client,
        resource: New<ZwlrScreencopyManagerV1>,
        _filter: &GlobalFilter,
        data_init: &mut DataInit<'_, Self>,
    ) {
        data_init.init(resource, ());
    }

    fn can_view(client: Client, filter: &GlobalFilter) -> bool {
        filter.allows(&client)
    }
}

impl Dispatch<ZwlrScreencopyManagerV1, ()> for Tessera {
    fn request(
        _state: &mut Self,
        _client: &Client,
        _manager: &ZwlrScreencopyManagerV1,
        request: zwlr_screencopy_manager_v1::Request,
        _data: &(),
        _dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        use zwlr_screencopy_manager_v1::Request;
        let (frame, output, cursor, region) = match request {
            Request::CaptureOutput {
                frame,
                output,
                overlay_cursor,
            } => (frame, output, overlay_cursor != 0, None),
            Request::CaptureOutputRegion {
                frame,
                output,
                overlay_cursor,
                x,
                y,
                width,
                height,
            } => (
                frame,
                output,
                overlay_cursor != 0,
                Some((x, y, width, height)),
            ),
            _ => return,
        };
        let output = Output::from_resource(&output);
        let full = output.as_ref().and_then(framebuffer_size);
        // A region is in logical output coordinates; the frame is in buffer pixels.
        let region = match (full, region) {
            (Some(full), None) => Some(Rectangle::from_size(full)),
            (Some(full), Some((x, y, w, h))) => {
                let scale = output
                    .as_ref()
                    .map_or(1.0, |o| o.current_scale().fractional_scale());
                let px = |v: i32| (f64::from(v) * scale).round() as i32;
                let wanted = Rectangle::new((px(x), px(y)).into(), (px(w), px(h)).into());
                wanted.intersection(Rectangle::from_size(full))
            }
            (None, _) => None,
        };
        let frame = data_init.init(
            frame,
            Frame(Mutex::new(FrameState {
                output: output.clone(),
                region: region.unwrap_or_default(),
                cursor,
                used: false,
            })),
        );
        let Some(region) = region.filter(|r| !r.is_empty()) else {
            frame.failed();
            return;
        };
        let (w, h) = (region.size.w, region.size.h);
        frame.buffer(wl_shm::Format::Xrgb8888, w as u32, h as u32, (w * 4) as u32);
        if frame.version() >= 3 {
            frame.buffer_done();
        }
    }
}

impl Dispatch<ZwlrScreencopyFrameV1, Frame> for Tessera {
    fn request(
        state: &mut Self,
        _client: &Client,
        frame: &ZwlrScreencopyFrameV1,
        request: zwlr_screencopy_frame_v1::Request,
        data: &Frame,
        _dh: &DisplayHandle,
        _data_init: &mut DataInit<'_, Self>,
    ) {
        use zwlr_screencopy_frame_v1::{Error, Request};
        let (buffer, with_damage) = match request {
            Request::Copy { buffer } => (buffer, false),
            Request::CopyWithDamage { buffer } => (buffer, true),
            _ => return,
        };
        let Ok(mut st) = data.0.lock() else {
            return;
        };
        if st.used {
            frame.post_error(Error::AlreadyUsed, "the frame was copied already");
            return;
        }
        st.used = true;
        let region = st.region;
        let cursor = st.cursor;
        let Some(output) = st.output.clone().filter(|o| framebuffer_size(o).is_some()) else {
            frame.failed();
            return;
        };
        drop(st);
        if let Err(why) = check_buffer(&buffer, region.size) {
            frame.post_error(Error::InvalidBuffer, why);
            return;
        }
        let capture = match state.render_capture(&output, cursor) {
            Ok(c) => c,
            Err(_) => {
                frame.failed();
                return;
            }
        };
        if copy_into(&buffer, &capture, region).is_err() {
            frame.failed();
            return;
        }
        buffer.release();
        frame.flags(zwlr_screencopy_frame_v1::Flags::empty());
        if with_damage {
            // Every copy renders afresh, so the whole region is new to the client.
            frame.damage(0, 0, region.size.w as u32, region.size.h as u32);
        }
        let now = std::time::Duration::from(state.clock.now());
        let secs = now.as_secs();
        frame.ready((secs >> 32) as u32, secs as u32, now.subsec_nanos());
    }
}

/// The buffer must be shm, in the advertised format, size and stride.
fn check_buffer(buffer: &WlBuffer, size: Size<i32, Physical>) -> Result<(), String> {
    smithay::wayland::shm::with_buffer_contents(buffer, |_, _, d| {
        let ok_format = matches!(
            d.format,
            wl_shm::Format::Xrgb8888 | wl_shm::Format::Argb8888
        );
        if !ok_format || d.width != size.w || d.height != size.h || d.stride != size.w * 4 {
            Err(format!(
                "buffer is {}x{} stride {} {:?}; the frame wants {}x{} stride {} xrgb8888",
                d.width,
                d.height,
                d.stride,
                d.format,
                size.w,
                size.h,
                size.w * 4
            ))
        } else {
            Ok(())
        }
    })
    .map_err(|e| format!("not an shm buffer: {e}"))?
}

/// Writes `region` of `capture` (RGBA) into the shm buffer as little-endian XRGB.
fn copy_into(
    buffer: &WlBuffer,
    capture: &Capture,
    region: Rectangle<i32, Physical>,
) -> Result<(), ()> {
    if region.loc.x < 0
        || region.loc.y < 0
        || (region.loc.x + region.size.w) as u32 > capture.width
        || (region.loc.y + region.size.h) as u32 > capture.height
    {
        return Err(());
    }
    smithay::wayland::shm::with_buffer_contents_mut(buffer, |ptr, len, d| {
        let start = d.offset as usize;
        let needed = (d.stride * d.height) as usize;
        if start + needed > len {
            return Err(());
        }
        // SAFETY: the pool mapping is `len` bytes and the range was checked above;
        // smithay holds the pool mapped for the duration of the closure.
        let dst = unsafe { std::slice::from_raw_parts_mut(ptr.add(start), needed) };
        for (row, line) in dst.chunks_exact_mut(d.stride as usize).enumerate() {
            let y = region.loc.y as usize + row;
            let from = (y * capture.width as usize + region.loc.x as usize) * 4;
            let src = &capture.rgba[from..from + region.size.w as usize * 4];
            for (px, rgba) in line.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                px.copy_from_slice(&[rgba[2], rgba[1], rgba[0], 0xff]);
            }
        }
        Ok(())
    })
    .map_err(|_| ())?
}
