//! The client side of zwp_linux_dmabuf_v1 for the in-process tests: feedback
//! events decoded through the format table, and the params' created/failed.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;

use wayland_client::protocol::{wl_buffer, wl_region};
use wayland_client::{
    Connection, Dispatch, Proxy, QueueHandle, delegate_noop, event_created_child,
};
use wayland_protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_buffer_params_v1, zwp_linux_dmabuf_feedback_v1, zwp_linux_dmabuf_v1,
};

use super::client::{ClientData, TestClient};

/// A (fourcc, modifier) pair.
pub type Fmt = (u32, u64);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeenTranche {
    pub device: Vec<u8>,
    /// 1 is `scanout`.
    pub flags: u32,
    pub formats: Vec<Fmt>,
}

/// One complete feedback, up to its `done`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeenFeedback {
    pub main_device: Vec<u8>,
    pub table: Vec<Fmt>,
    pub tranches: Vec<SeenTranche>,
}

#[derive(Debug, Default)]
pub struct DmabufSeen {
    /// Completed feedbacks per feedback object, in arrival order.
    pub done: HashMap<u32, Vec<SeenFeedback>>,
    pending: HashMap<u32, SeenFeedback>,
    tranche: HashMap<u32, SeenTranche>,
    /// Params object ids that got `created` or `failed`.
    pub created: Vec<u32>,
    pub failed: Vec<u32>,
}

impl DmabufSeen {
    pub fn latest(&self, feedback: &impl Proxy) -> Option<&SeenFeedback> {
        self.done.get(&feedback.id().protocol_id())?.last()
    }
}

impl TestClient {
    pub fn bind_dmabuf(&mut self) -> zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1 {
        let (name, _, version) = self
            .data
            .globals
            .iter()
            .find(|g| g.1 == "zwp_linux_dmabuf_v1")
            .cloned()
            .expect("zwp_linux_dmabuf_v1 is advertised");
        assert_eq!(version, 5);
        self.registry.bind(name, 5, &self.qh(), ())
    }

    /// The whole surface as its opaque region.
    pub fn set_opaque(&mut self, surface: &wayland_client::protocol::wl_surface::WlSurface) {
        let qh = self.qh();
        let region = self
            .data
            .compositor
            .as_ref()
            .unwrap()
            .create_region(&qh, ());
        region.add(0, 0, 1 << 15, 1 << 15);
        surface.set_opaque_region(Some(&region));
        region.destroy();
    }
}

/// A memfd of `size` bytes: a file, not a dmabuf, which is what a client that
/// lies about its buffers sends.
pub fn memfd(size: u64) -> OwnedFd {
    // SAFETY: a fresh fd from memfd_create is owned by nobody else.
    let fd = unsafe { libc::memfd_create(c"tessera-test".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: fd is a valid, owned descriptor.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    std::fs::File::from(fd.try_clone().unwrap())
        .set_len(size)
        .unwrap();
    fd
}

fn read_table(fd: OwnedFd, size: u32) -> Vec<Fmt> {
    let file = std::fs::File::from(fd);
    let mut bytes = vec![0u8; size as usize];
    file.read_exact_at(&mut bytes, 0).unwrap();
    bytes
        .chunks_exact(16)
        .map(|c| {
            let fourcc = u32::from_ne_bytes(c[0..4].try_into().unwrap());
            let modifier = u64::from_ne_bytes(c[8..16].try_into().unwrap());
            (fourcc, modifier)
        })
        .collect()
}

impl Dispatch<zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1, ()> for ClientData {
    fn event(
        state: &mut Self,
        fb: &zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1,
        event: zwp_linux_dmabuf_feedback_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use zwp_linux_dmabuf_feedback_v1::Event as E;
        let id = fb.id().protocol_id();
        let seen = &mut state.dmabuf;
        let pending = seen.pending.entry(id).or_default();
        match event {
            E::FormatTable { fd, size } => pending.table = read_table(fd, size),
            E::MainDevice { device } => pending.main_device = device,
            E::TrancheTargetDevice { device } => {
                seen.tranche.entry(id).or_default().device = device
            }
            E::TrancheFlags { flags } => {
                seen.tranche.entry(id).or_default().flags = flags.into();
            }
            E::TrancheFormats { indices } => {
                let table = pending.table.clone();
                let t = seen.tranche.entry(id).or_default();
                t.formats.extend(
                    indices
                        .chunks_exact(2)
                        .map(|i| table[u16::from_ne_bytes([i[0], i[1]]) as usize]),
                );
            }
            E::TrancheDone => {
                let t = seen.tranche.remove(&id).unwrap_or_default();
                pending.tranches.push(t);
            }
            E::Done => {
                let complete = seen.pending.remove(&id).unwrap_or_default();
                seen.done.entry(id).or_default().push(complete);
            }
            _ => {}
        }
    }
}

impl Dispatch<zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1, ()> for ClientData {
    fn event(
        state: &mut Self,
        params: &zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1,
        event: zwp_linux_buffer_params_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let id = params.id().protocol_id();
        match event {
            zwp_linux_buffer_params_v1::Event::Created { .. } => state.dmabuf.created.push(id),
            zwp_linux_buffer_params_v1::Event::Failed => state.dmabuf.failed.push(id),
            _ => {}
        }
    }

    event_created_child!(ClientData, zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1, [
        zwp_linux_buffer_params_v1::EVT_CREATED_OPCODE => (wl_buffer::WlBuffer, ()),
    ]);
}

delegate_noop!(ClientData: ignore zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1);
delegate_noop!(ClientData: ignore wl_region::WlRegion);

/// Adds one plane backed by `fd`.
pub fn add_plane(
    params: &zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1,
    fd: &impl AsFd,
    index: u32,
    offset: u32,
    stride: u32,
    modifier: u64,
) {
    params.add(
        fd.as_fd(),
        index,
        offset,
        stride,
        (modifier >> 32) as u32,
        modifier as u32,
    );
}
