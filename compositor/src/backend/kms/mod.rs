//! The kms backend: the login session on real hardware. A libseat session
//! (logind or seatd) hands out the DRM and input devices and takes them back on
//! a VT switch; the primary GPU renders with GLES on GBM; every connected
//! connector gets a CRTC and one smithay DrmCompositor, which puts elements on
//! planes where it can and composites the rest; udev reports hotplug; libinput
//! feeds the seat.

pub mod caps;
pub mod connectors;
mod devices;
mod input;
mod mapping;
mod outputs;

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use smithay::backend::allocator::Fourcc;
use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::allocator::gbm::{GbmAllocator, GbmDevice};
use smithay::backend::drm::compositor::DrmCompositor;
use smithay::backend::drm::exporter::gbm::GbmFramebufferExporter;
use smithay::backend::drm::{
    DrmDevice, DrmDeviceFd, DrmDeviceNotifier, DrmEvent, DrmNode, NodeType, PlaneInfo,
};
use smithay::backend::egl::{EGLContext, EGLDisplay};
use smithay::backend::libinput::LibinputSessionInterface;
use smithay::backend::renderer::ImportDma;
use smithay::backend::renderer::gles::{GlesRenderbuffer, GlesRenderer};
use smithay::backend::session::libseat::{LibSeatSession, LibSeatSessionNotifier};
use smithay::backend::session::{Event as SessionEvent, Session};
use smithay::backend::udev::{UdevBackend, UdevEvent};
use smithay::desktop::utils::OutputPresentationFeedback;
use smithay::output::Output;
use smithay::reexports::calloop::generic::Generic;
use smithay::reexports::calloop::{Interest, Mode, PostAction, RegistrationToken};
use smithay::reexports::drm::Device as _;
use smithay::reexports::drm::control::{Device as _, crtc, plane, property};
use smithay::reexports::input::Libinput;
use smithay::reexports::rustix::fs::OFlags;
use smithay::reexports::wayland_server::backend::GlobalId;
use smithay::utils::DeviceFd;

use super::Capture;
use super::headless::{Gpu, render_with};
use crate::render::decoration::DecorationRenderer;
use crate::render::planes::{DeviceCaps, FormatSet, PlaneKind};
use crate::render::shaders::Programs;
use crate::state::Tessera;
use caps::PlaneProps;

type Compositor = DrmCompositor<
    GbmAllocator<DrmDeviceFd>,
    GbmFramebufferExporter<DrmDeviceFd>,
    OutputPresentationFeedback,
    DrmDeviceFd,
>;

/// One lit connector: its CRTC's compositor and frame pacing.
struct Surface {
    output: Output,
    connector: smithay::reexports::drm::control::connector::Handle,
    compositor: Compositor,
    refresh: Duration,
    /// Frames presented, the presentation sequence number.
    seq: u64,
    /// A frame is committed and its vblank has not come yet.
    queued: bool,
    /// A timed render: one refresh after a failed frame, or an idle output's
    /// wake-up (see `outputs`).
    timed_render: Option<RegistrationToken>,
    /// When the last render started, which paces wake-ups.
    last_render: Option<std::time::Instant>,
    /// Commits in a row the kernel refused.
    failures: u32,
    /// Until this sequence number, everything is composited (scanout backed off).
    backoff_until: u64,
    global: Option<GlobalId>,
}

pub struct Kms {
    session: LibSeatSession,
    node: DrmNode,
    render_node: Option<DrmNode>,
    drm: DrmDevice,
    gbm: GbmDevice<DrmDeviceFd>,
    gpu: Gpu<GlesRenderer, GlesRenderbuffer>,
    programs: Box<Programs>,
    surfaces: HashMap<crtc::Handle, Surface>,
    libinput: Libinput,
    /// The input devices libinput reported, kept to be set up again on reload.
    input_devices: Vec<devices::TrackedDevice>,
    /// The planes as read at start; `kms_start` hands them to the plane policy
    /// (`Tessera::scanout`), which every frame then reads.
    caps: DeviceCaps,
}

/// The event sources, inserted once the state that handles them exists.
pub struct KmsSources {
    session: LibSeatSessionNotifier,
    drm: DrmDeviceNotifier,
    udev: UdevBackend,
}

/// Why the kms backend could not start; each names what to check.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error(
        "no seat session ({0}); start tessera from a VT login or a unit with PAMName=, with logind or seatd running"
    )]
    Session(String),
    #[error("no GPU on seat {0}")]
    NoGpu(String),
    #[error("{what} ({path}): {err}")]
    Device {
        what: &'static str,
        path: PathBuf,
        err: String,
    },
}

impl Kms {
    /// `outputs` are the output names in layout order.
    pub fn describe_inputs(
        &self,
        input: &tessera_config::compositor::InputConfig,
        outputs: &[String],
    ) -> Vec<crate::ipc::proto::InputDeviceInfo> {
        self.input_devices
            .iter()
            .map(|d| devices::describe(d, input, outputs))
            .collect()
    }

    pub fn configure_inputs(&mut self, input: &tessera_config::compositor::InputConfig) {
        for device in &mut self.input_devices {
            devices::configure(device, input);
        }
    }

    /// Opens the session, the primary GPU and the input devices.
    pub fn open() -> Result<(Kms, KmsSources), KmsError> {
        let (mut session, session_notifier) =
            LibSeatSession::new().map_err(|e| KmsError::Session(e.to_string()))?;
        let seat = session.seat();
        let udev = UdevBackend::new(&seat).map_err(|e| KmsError::Session(e.to_string()))?;
        let path = smithay::backend::udev::primary_gpu(&seat)
            .ok()
            .flatten()
            .or_else(|| {
                smithay::backend::udev::all_gpus(&seat)
                    .ok()
                    .and_then(|all| all.into_iter().next())
            })
            .ok_or_else(|| KmsError::NoGpu(seat.clone()))?;
        let device = |what: &'static str| {
            let path = path.clone();
            move |err: String| KmsError::Device { what, path, err }
        };
        let fd = session
            .open(
                &path,
                OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            )
            .map_err(|e| device("cannot open the DRM device")(e.to_string()))?;
        let fd = DrmDeviceFd::new(DeviceFd::from(fd));
        let node = DrmNode::from_file(&fd).map_err(|e| device("not a DRM node")(e.to_string()))?;
        let render_node = node.node_with_type(NodeType::Render).and_then(Result::ok);
        let (drm, drm_notifier) =
            DrmDevice::new(fd.clone(), true).map_err(|e| device("DRM")(e.to_string()))?;
        let gbm = GbmDevice::new(fd.clone()).map_err(|e| device("GBM")(e.to_string()))?;
        // SAFETY: the GBM device outlives the display, which the renderer's context holds.
        let display =
            unsafe { EGLDisplay::new(gbm.clone()) }.map_err(|e| device("EGL")(e.to_string()))?;
        let context =
            EGLContext::new(&display).map_err(|e| device("EGL context")(e.to_string()))?;
        // SAFETY: the context is fresh and used by this renderer alone.
        let mut renderer =
            unsafe { GlesRenderer::new(context) }.map_err(|e| device("GLES")(format!("{e:?}")))?;
        let programs = Programs::compile(&mut renderer).map_err(device("shaders"))?;

        let mut libinput = Libinput::new_with_udev(LibinputSessionInterface::from(session.clone()));
        libinput
            .udev_assign_seat(&seat)
            .map_err(|()| KmsError::Session(format!("libinput cannot take seat {seat}")))?;

        let driver = drm
            .get_driver()
            .map(|d| d.name().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        let caps = read_caps(&drm, &driver);
        tracing::info!(
            gpu = %path.display(),
            driver,
            planes = caps.planes.len(),
            render_node = ?render_node,
            "kms: primary GPU opened"
        );
        let kms = Kms {
            session,
            node,
            render_node,
            drm,
            gbm,
            gpu: Gpu::new(renderer),
            programs: Box::new(programs),
            surfaces: HashMap::new(),
            libinput,
            input_devices: Vec::new(),
            caps,
        };
        let sources = KmsSources {
            session: session_notifier,
            drm: drm_notifier,
            udev,
        };
        Ok((kms, sources))
    }

    pub fn caps(&self) -> &DeviceCaps {
        &self.caps
    }

    pub fn dmabuf_formats(&self) -> FormatSet {
        self.gpu
            .renderer
            .dmabuf_formats()
            .into_iter()
            .map(crate::dmabuf::from_format)
            .collect()
    }

    /// The node clients should allocate on: the render node when there is one.
    pub fn main_device(&self) -> libc::dev_t {
        self.render_node.unwrap_or(self.node).dev_id()
    }

    pub fn import_dmabuf(&mut self, dmabuf: &Dmabuf) -> Result<(), String> {
        self.gpu
            .renderer
            .import_dmabuf(dmabuf, None)
            .map(|_| ())
            .map_err(|e| format!("gles: {e:?}"))
    }

    pub fn outputs(&self) -> Vec<Output> {
        self.surfaces.values().map(|s| s.output.clone()).collect()
    }

    /// Renders `output` offscreen and reads it back; the CRTC is not touched.
    pub fn capture(
        &mut self,
        state: &Tessera,
        output: &Output,
        cursor: bool,
    ) -> Result<Capture, String> {
        let programs = GlesRenderer::decoration_programs(Some(&self.programs));
        let (capture, _) = render_with(
            state,
            &mut self.gpu,
            output,
            true,
            cursor,
            Fourcc::Abgr8888,
            &programs,
        )?;
        capture.ok_or_else(|| "the renderer returned no pixels".to_owned())
    }

    pub fn change_vt(&mut self, vt: u8) {
        if let Err(err) = self.session.change_vt(i32::from(vt)) {
            tracing::warn!(vt, %err, "VT switch failed");
        }
    }
}

/// The planes of the first CRTC, which is what the policy plans against (on
/// every driver we know, each CRTC has the same kinds of planes).
fn read_caps(drm: &DrmDevice, driver: &str) -> DeviceCaps {
    let Some(crtc) = drm.crtcs().first().copied() else {
        return DeviceCaps::new(driver, Vec::new());
    };
    let Ok(planes) = drm.planes(&crtc) else {
        return DeviceCaps::new(driver, Vec::new());
    };
    let cursor = drm.cursor_size();
    let all: Vec<(PlaneKind, &PlaneInfo)> = planes
        .primary
        .iter()
        .map(|p| (PlaneKind::Primary, p))
        .chain(planes.overlay.iter().map(|p| (PlaneKind::Overlay, p)))
        .chain(planes.cursor.iter().map(|p| (PlaneKind::Cursor, p)))
        .collect();
    let props: Vec<PlaneProps> = all
        .into_iter()
        .map(|(kind, p)| PlaneProps {
            id: u32::from(p.handle),
            kind,
            formats: p
                .formats
                .iter()
                .copied()
                .map(crate::dmabuf::from_format)
                .collect(),
            zpos: p.zpos,
            rotation: rotation_bits(drm, p.handle),
            premultiplied: blends_premultiplied(drm, p.handle),
            cursor_size: Some((cursor.w, cursor.h)),
        })
        .collect();
    caps::device_caps(driver, &props)
}

/// The supported bits of a plane's `rotation` property; None without one. The
/// drm crate does not list a bitmask's entries, so they are read with the
/// GETPROPERTY ioctl itself.
fn rotation_bits(drm: &DrmDevice, plane: plane::Handle) -> Option<u64> {
    let props = drm.get_properties(plane).ok()?;
    let handle = props.iter().map(|(h, _)| *h).find(|h| {
        drm.get_property(*h).is_ok_and(|info| {
            info.name().to_bytes() == b"rotation"
                && matches!(info.value_type(), property::ValueType::Bitmask)
        })
    })?;
    let mut entries = Vec::new();
    drm_ffi::mode::get_property(drm.as_fd(), u32::from(handle), None, Some(&mut entries)).ok()?;
    let names: Vec<String> = entries
        .iter()
        .map(|e| {
            let bytes: Vec<u8> = e
                .name
                .iter()
                .take_while(|c| **c != 0)
                .map(|c| *c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect();
    Some(caps::rotation_mask(names.iter().map(String::as_str)))
}

/// Whether a plane blends premultiplied alpha: its `pixel blend mode` offers
/// "Pre-multiplied", or it has no such property (then the kernel's default,
/// premultiplied, applies).
fn blends_premultiplied(drm: &DrmDevice, plane: plane::Handle) -> bool {
    let Ok(props) = drm.get_properties(plane) else {
        return false;
    };
    for (handle, _) in props.iter() {
        let Ok(info) = drm.get_property(*handle) else {
            continue;
        };
        if info.name().to_bytes() != b"pixel blend mode" {
            continue;
        }
        return match info.value_type() {
            property::ValueType::Enum(values) => values
                .values()
                .1
                .iter()
                .any(|v| v.name().to_bytes() == b"Pre-multiplied"),
            _ => false,
        };
    }
    true
}

impl Tessera {
    /// Inserts the backend's event sources and lights up the connected outputs.
    pub fn kms_start(&mut self, sources: KmsSources) -> anyhow::Result<()> {
        let handle = self.loop_handle.clone();
        handle
            .insert_source(sources.session, |event, _, state| match event {
                SessionEvent::PauseSession => state.kms_pause(),
                SessionEvent::ActivateSession => state.kms_resume(),
            })
            .map_err(|e| anyhow::anyhow!("session source: {e}"))?;
        handle
            .insert_source(sources.drm, |event, meta, state| match event {
                DrmEvent::VBlank(crtc) => state.kms_vblank(crtc, meta.as_ref().map(|m| m.time)),
                DrmEvent::Error(err) => tracing::error!(%err, "DRM device error"),
            })
            .map_err(|e| anyhow::anyhow!("DRM source: {e}"))?;
        handle
            .insert_source(sources.udev, |event, _, state| match event {
                UdevEvent::Changed { device_id } => {
                    if state.kms().is_some_and(|k| k.node.dev_id() == device_id) {
                        state.kms_scan();
                    }
                }
                UdevEvent::Added { path, .. } => {
                    tracing::info!(path = %path.display(), "GPU added; only the primary GPU drives outputs")
                }
                UdevEvent::Removed { device_id } => {
                    if state.kms().is_some_and(|k| k.node.dev_id() == device_id) {
                        tracing::error!("the primary GPU went away");
                        state.quit();
                    }
                }
            })
            .map_err(|e| anyhow::anyhow!("udev source: {e}"))?;
        let libinput = self.kms().map(|k| k.libinput.clone());
        if let Some(libinput) = libinput {
            handle
                .insert_source(
                    Generic::new(libinput, Interest::READ, Mode::Level),
                    |_, _, state| {
                        state.drain_libinput();
                        Ok(PostAction::Continue)
                    },
                )
                .map_err(|e| anyhow::anyhow!("libinput source: {e}"))?;
            // The devices found when the seat was taken are already queued,
            // and nothing will wake the fd for them until a device sends
            // something.
            handle.insert_idle(|state| state.drain_libinput());
        }
        if let Some(caps) = self.kms().map(|k| k.caps.clone()) {
            let source = caps.driver.clone();
            self.scanout = crate::scanout::Scanout::new(caps, source, self.scanout.switches);
        }
        self.kms_scan();
        if self.space.outputs().next().is_none() {
            tracing::warn!("no connected output yet; waiting for a hotplug");
        }
        Ok(())
    }

    fn kms(&self) -> Option<&Kms> {
        match &self.backend {
            super::Backend::Kms(k) => Some(k),
            _ => None,
        }
    }

    fn kms_mut(&mut self) -> Option<&mut Kms> {
        match &mut self.backend {
            super::Backend::Kms(k) => Some(k),
            _ => None,
        }
    }

    /// Another session took the seat (a VT switch): stop touching the devices.
    fn kms_pause(&mut self) {
        tracing::info!("session paused");
        // Nothing is drawn until the session is back: no kept element holds a
        // client's buffer meanwhile.
        self.kept.get_mut().clear();
        if let Some(kms) = self.kms_mut() {
            kms.libinput.suspend();
            kms.drm.pause();
            for s in kms.surfaces.values_mut() {
                s.queued = false;
            }
        }
        // libinput let go of every key and button still down, and of the
        // devices: the clients hear of the releases now, not at the first key
        // after the session comes back.
        self.drain_libinput();
    }

    /// The seat is ours again: reclaim the devices and redraw everything, since
    /// whoever had the CRTCs left their own state on them.
    fn kms_resume(&mut self) {
        tracing::info!("session resumed");
        // The devices libinput finds again are queued without waking its fd.
        self.loop_handle.insert_idle(|state| state.drain_libinput());
        let Some(kms) = self.kms_mut() else {
            return;
        };
        if kms.libinput.resume().is_err() {
            tracing::error!("libinput did not resume; input stays off");
        }
        if let Err(err) = kms.drm.activate(false) {
            tracing::error!(%err, "cannot take the DRM device back");
            return;
        }
        for s in kms.surfaces.values_mut() {
            if let Err(err) = s.compositor.reset_state() {
                tracing::warn!(%err, "cannot reset the CRTC state");
            }
        }
        // Outputs may have changed while away.
        self.kms_scan();
        let crtcs: Vec<_> = self
            .kms()
            .map(|k| k.surfaces.keys().copied().collect())
            .unwrap_or_default();
        for crtc in crtcs {
            self.kms_render(crtc);
        }
    }
}
