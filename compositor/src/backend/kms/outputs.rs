//! Connectors to outputs, and each output's frame cycle: render, commit, vblank.
//!
//! A frame is rendered when the previous one's vblank arrives. When nothing
//! changed, nothing is committed and the output goes idle: no timer, no wakeup,
//! until something that may change the screen (`Tessera::needs_redraw`) wakes
//! it. A laptop's idle session then costs no CPU at the refresh rate, as with
//! wlroots and niri. Waking draws at once, or one refresh after the last frame
//! when that was more recent, so no client can make an output draw faster than
//! its rate by committing nothing new in a loop.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use smithay::backend::allocator::Fourcc;
use smithay::backend::allocator::gbm::{GbmAllocator, GbmBufferFlags};
use smithay::backend::drm::DrmEventTime;
use smithay::backend::drm::compositor::{DrmCompositor, PrimaryPlaneElement};
use smithay::backend::drm::exporter::gbm::GbmFramebufferExporter;
use smithay::backend::renderer::element::Element as _;
use smithay::backend::renderer::gles::GlesRenderer;
use smithay::output::{Mode, Output, PhysicalProperties, Subpixel};
use smithay::reexports::calloop::timer::{TimeoutAction, Timer};
use smithay::reexports::drm::control::{
    Device as _, Mode as DrmMode, ModeFlags, ModeTypeFlags, connector, crtc,
};
use smithay::reexports::wayland_protocols::wp::presentation_time::server::wp_presentation_feedback::Kind;
use smithay::wayland::presentation::Refresh;

use super::connectors::{self, CrtcRequest, ModeCandidate};
use super::{Kms, Surface, caps};
use crate::backend::Backend;
use crate::render::decoration::DecorationRenderer;
use crate::render::planes::FAILURE_LIMIT;
use crate::scanout;
use crate::state::Tessera;

/// Swapchain formats in order of preference; every KMS driver scans out XRGB8888.
const SWAPCHAIN_FORMATS: [Fourcc; 2] = [Fourcc::Xrgb8888, Fourcc::Argb8888];

/// After FAILURE_LIMIT refused commits in a row, scanout stays off for this many frames.
const BACKOFF_FRAMES: u64 = 300;

/// A connected connector as the kernel describes it.
struct Connected {
    handle: connector::Handle,
    name: String,
    modes: Vec<DrmMode>,
    size_mm: (i32, i32),
    request: CrtcRequest,
}

/// The device's CRTCs and connected connectors, probed now.
fn scan(kms: &Kms) -> std::io::Result<(Vec<crtc::Handle>, Vec<Connected>)> {
    let res = kms.drm.resource_handles()?;
    let crtcs = res.crtcs().to_vec();
    let mut out = Vec::new();
    for &handle in res.connectors() {
        let info = kms.drm.get_connector(handle, true)?;
        if info.state() != connector::State::Connected {
            continue;
        }
        let index_of = |c: crtc::Handle| crtcs.iter().position(|x| *x == c);
        let mut possible = Vec::new();
        for enc in info.encoders() {
            if let Ok(e) = kms.drm.get_encoder(*enc) {
                for c in res.filter_crtcs(e.possible_crtcs()) {
                    if let Some(i) = index_of(c)
                        && !possible.contains(&i)
                    {
                        possible.push(i);
                    }
                }
            }
        }
        let current = info
            .current_encoder()
            .and_then(|e| kms.drm.get_encoder(e).ok())
            .and_then(|e| e.crtc())
            .and_then(index_of);
        let (w, h) = info.size().unwrap_or((0, 0));
        out.push(Connected {
            handle,
            name: connectors::output_name(info.interface().as_str(), info.interface_id()),
            modes: info.modes().to_vec(),
            size_mm: (w as i32, h as i32),
            request: CrtcRequest {
                connector: u32::from(handle),
                current,
                possible,
            },
        });
    }
    Ok((crtcs, out))
}

fn candidate(m: &DrmMode) -> ModeCandidate {
    let (width, height) = m.size();
    ModeCandidate {
        width,
        height,
        refresh_mhz: connectors::refresh_mhz(
            m.clock(),
            m.hsync().2,
            m.vsync().2,
            m.vscan(),
            m.flags().contains(ModeFlags::INTERLACE),
        ),
        preferred: m.mode_type().contains(ModeTypeFlags::PREFERRED),
    }
}

/// What the compositor put where in one frame.
struct Placed {
    empty: bool,
    primary_client: bool,
    overlays: u64,
    cursor: bool,
    /// The elements on planes (scanout::hash_id), to hold against the plan.
    on_planes: HashSet<u64>,
    /// Planes were allowed this frame (no back-off): a composited element the
    /// plan offered a plane was refused.
    planes_allowed: bool,
}

impl Tessera {
    /// Matches outputs to connectors: drops the unplugged, lights up the new.
    pub(super) fn kms_scan(&mut self) {
        let Some(kms) = self.kms() else {
            return;
        };
        let (crtcs, connected) = match scan(kms) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(%err, "cannot read the connectors");
                return;
            }
        };
        let gone: Vec<crtc::Handle> = kms
            .surfaces
            .iter()
            .filter(|(_, s)| !connected.iter().any(|c| c.handle == s.connector))
            .map(|(crtc, _)| *crtc)
            .collect();
        for crtc in gone {
            self.kms_remove(crtc);
        }
        let Some(kms) = self.kms() else {
            return;
        };
        let taken: Vec<usize> = kms
            .surfaces
            .keys()
            .filter_map(|c| crtcs.iter().position(|x| x == c))
            .collect();
        let new: Vec<&Connected> = connected
            .iter()
            .filter(|c| !kms.surfaces.values().any(|s| s.connector == c.handle))
            .filter(|c| {
                let enabled = self.config.output.get(&c.name).is_none_or(|o| o.enabled);
                if !enabled {
                    tracing::info!(output = c.name, "disabled in the config");
                }
                enabled
            })
            .collect();
        let requests: Vec<CrtcRequest> = new.iter().map(|c| c.request.clone()).collect();
        let assigned = connectors::assign_crtcs(&requests, &taken);
        for c in &new {
            match assigned
                .iter()
                .find(|(conn, _)| *conn == u32::from(c.handle))
            {
                Some((_, i)) => {
                    if let Err(err) = self.kms_add(crtcs[*i], c) {
                        tracing::error!(output = c.name, %err, "cannot light up the output");
                    }
                }
                None => tracing::warn!(output = c.name, "no free CRTC can drive this connector"),
            }
        }
    }

    fn kms_add(&mut self, crtc: crtc::Handle, c: &Connected) -> Result<(), String> {
        let wanted = self.config.output.get(&c.name).and_then(|o| o.mode);
        let candidates: Vec<ModeCandidate> = c.modes.iter().map(candidate).collect();
        let i = connectors::pick_mode(&candidates, wanted.as_ref()).ok_or("it lists no modes")?;
        let m = candidates[i];
        if let Some(w) = wanted
            && (u32::from(m.width), u32::from(m.height)) != (w.width, w.height)
        {
            tracing::warn!(
                output = c.name,
                wanted = format!("{}x{}", w.width, w.height),
                "the configured mode is not offered; using the preferred one"
            );
        }
        let output = Output::new(
            c.name.clone(),
            PhysicalProperties {
                size: c.size_mm.into(),
                subpixel: Subpixel::Unknown,
                make: "Unknown".into(),
                model: "Unknown".into(),
            },
        );
        let mode = Mode {
            size: (i32::from(m.width), i32::from(m.height)).into(),
            refresh: m.refresh_mhz as i32,
        };
        let global = self.map_new_output(&output, mode, 1.0);
        let result = self.kms_surface(crtc, c, &output, c.modes[i], m.refresh_mhz);
        if let Err(err) = result {
            self.space.unmap_output(&output);
            self.display_handle.remove_global::<Tessera>(global);
            return Err(err);
        }
        if let Some(s) = self.kms_mut().and_then(|k| k.surfaces.get_mut(&crtc)) {
            s.global = Some(global);
        }
        tracing::info!(
            output = c.name,
            mode = format!(
                "{}x{}@{:.3}",
                m.width,
                m.height,
                f64::from(m.refresh_mhz) / 1000.0
            ),
            crtc = u32::from(crtc),
            "output connected"
        );
        self.kms_render(crtc);
        Ok(())
    }

    fn kms_surface(
        &mut self,
        crtc: crtc::Handle,
        c: &Connected,
        output: &Output,
        mode: DrmMode,
        refresh_mhz: u32,
    ) -> Result<(), String> {
        let kms = self.kms_mut().ok_or("not on kms")?;
        let surface = kms
            .drm
            .create_surface(crtc, mode, &[c.handle])
            .map_err(|e| format!("CRTC: {e}"))?;
        let allocator = GbmAllocator::new(
            kms.gbm.clone(),
            GbmBufferFlags::RENDERING | GbmBufferFlags::SCANOUT,
        );
        let exporter =
            GbmFramebufferExporter::new(kms.gbm.clone(), Some(kms.render_node.unwrap_or(kms.node)));
        let render_formats = kms
            .gpu
            .renderer
            .egl_context()
            .dmabuf_render_formats()
            .clone();
        let compositor = DrmCompositor::new(
            output,
            surface,
            None,
            allocator,
            exporter,
            SWAPCHAIN_FORMATS,
            render_formats,
            kms.drm.cursor_size(),
            Some(kms.gbm.clone()),
        )
        .map_err(|e| format!("DRM compositor: {e}"))?;
        kms.surfaces.insert(
            crtc,
            Surface {
                output: output.clone(),
                connector: c.handle,
                compositor,
                refresh: Duration::from_nanos(1_000_000_000_000 / u64::from(refresh_mhz.max(1))),
                seq: 0,
                queued: false,
                timed_render: None,
                last_render: None,
                failures: 0,
                backoff_until: 0,
                global: None,
            },
        );
        Ok(())
    }

    /// An unplugged output: windows stay in the space and the shell moves them
    /// to the outputs that remain.
    fn kms_remove(&mut self, crtc: crtc::Handle) {
        let Some(surface) = self.kms_mut().and_then(|k| k.surfaces.remove(&crtc)) else {
            return;
        };
        if let Some(token) = surface.timed_render {
            self.loop_handle.remove(token);
        }
        if let Some(global) = surface.global {
            self.display_handle.remove_global::<Tessera>(global);
        }
        let name = surface.output.name();
        self.space.unmap_output(&surface.output);
        self.scanout.forget_output(&name);
        self.kept.get_mut().forget_output(&name);
        self.outputs_changed();
        tracing::info!(output = name, "output disconnected");
    }

    /// Renders and commits the next frame of `crtc`, unless one is in flight.
    pub(super) fn kms_render(&mut self, crtc: crtc::Handle) {
        let Some(kms) = self.kms_mut() else {
            return;
        };
        if !kms.drm.is_active() {
            return;
        }
        let Some(s) = kms.surfaces.get_mut(&crtc).filter(|s| !s.queued) else {
            return;
        };
        let started = Instant::now();
        s.last_render = Some(started);
        let output = s.output.clone();
        self.settle_layout(&output);

        let mut backend = std::mem::replace(&mut self.backend, Backend::None);
        let rendered = match &mut backend {
            Backend::Kms(kms) => render_frame(self, kms, crtc),
            _ => Err("not on kms".into()),
        };
        self.backend = backend;
        let name = output.name();
        let (frame, placed) = match rendered {
            Ok(r) => {
                // render_frame waits for the drawing where the flip cannot.
                self.scanout.record_render_time(&name, started.elapsed());
                r
            }
            Err(err) => {
                tracing::warn!(output = name, %err, "frame failed");
                self.kms_retry(crtc);
                return;
            }
        };
        if placed.empty {
            self.scanout.record_kms(&name, |k| k.empty += 1);
            // Clients waiting for a frame callback get it even when nothing
            // changed; their next commit wakes the output again.
            let _ = self.send_frames(&output);
            return;
        }
        self.scanout.record(&name, &frame);
        if placed.planes_allowed {
            self.scanout
                .record_placements(&name, &frame.plan, &placed.on_planes);
        }
        let feedback = self.send_frames(&output);
        let Some(s) = self.kms_mut().and_then(|k| k.surfaces.get_mut(&crtc)) else {
            return;
        };
        match s.compositor.queue_frame(feedback) {
            Ok(()) => {
                s.queued = true;
                s.failures = 0;
                self.scanout.record_kms(&name, |k| {
                    k.commits += 1;
                    if placed.primary_client {
                        k.primary_client += 1;
                    } else {
                        k.primary_swapchain += 1;
                    }
                    k.overlay_elements += placed.overlays;
                    k.cursor_elements += u64::from(placed.cursor);
                });
                if self.frames_rendered == 0 {
                    // Read off the journal for the boot figures (time to first frame).
                    tracing::info!(output = name, "first frame committed");
                }
                self.frames_rendered += 1;
                self.frame_shown(&name);
            }
            Err(err) => {
                s.failures += 1;
                let backoff = s.failures >= FAILURE_LIMIT;
                if backoff {
                    // The kernel keeps refusing what the TEST commits accepted:
                    // composite everything for a while rather than flicker.
                    s.backoff_until = s.seq + BACKOFF_FRAMES;
                    s.failures = 0;
                }
                s.compositor.reset_buffers();
                tracing::warn!(output = name, %err, backoff, "commit refused");
                self.scanout.record_kms(&name, |k| k.failed += 1);
                self.kms_retry(crtc);
            }
        }
        self.refresh_dmabuf_feedback();
    }

    /// Tries again one refresh from now.
    fn kms_retry(&mut self, crtc: crtc::Handle) {
        if let Some(refresh) = self
            .kms()
            .and_then(|k| k.surfaces.get(&crtc))
            .map(|s| s.refresh)
        {
            self.kms_render_after(crtc, refresh);
        }
    }

    /// Something may have changed on screen: every idle output draws again,
    /// paced by `wake_delay`. An output with a frame in flight needs nothing, nor
    /// one with a render already timed (`kms_render_after`): that frame sees the
    /// change.
    pub(crate) fn kms_wake(&mut self) {
        let Some(kms) = self.kms() else {
            return;
        };
        if !kms.drm.is_active() {
            // Resuming the session draws every output.
            return;
        }
        let now = Instant::now();
        let idle: Vec<_> = kms
            .surfaces
            .iter()
            .filter(|(_, s)| !s.queued)
            .map(|(crtc, s)| (*crtc, wake_delay(s.last_render, now, s.refresh)))
            .collect();
        for (crtc, delay) in idle {
            self.kms_render_after(crtc, delay);
        }
    }

    /// Renders `crtc` once `delay` has passed, unless a render is already timed.
    fn kms_render_after(&mut self, crtc: crtc::Handle, delay: Duration) {
        let Some(s) = self.kms().and_then(|k| k.surfaces.get(&crtc)) else {
            return;
        };
        if s.timed_render.is_some() {
            return;
        }
        let timer = Timer::from_duration(delay);
        let token = self
            .loop_handle
            .insert_source(timer, move |_, _, state| {
                if let Some(s) = state.kms_mut().and_then(|k| k.surfaces.get_mut(&crtc)) {
                    s.timed_render = None;
                }
                state.kms_render(crtc);
                TimeoutAction::Drop
            })
            .ok();
        if let Some(s) = self.kms_mut().and_then(|k| k.surfaces.get_mut(&crtc)) {
            s.timed_render = token;
        }
    }

    /// The committed frame is on screen: present its feedback, draw the next.
    pub(super) fn kms_vblank(&mut self, crtc: crtc::Handle, time: Option<DrmEventTime>) {
        let now = self.clock.now();
        let Some(s) = self.kms_mut().and_then(|k| k.surfaces.get_mut(&crtc)) else {
            return;
        };
        s.queued = false;
        let (when, kind) = match time {
            Some(DrmEventTime::Monotonic(t)) if !t.is_zero() => {
                (t.into(), Kind::Vsync | Kind::HwClock | Kind::HwCompletion)
            }
            _ => (now, Kind::Vsync),
        };
        match s.compositor.frame_submitted() {
            Ok(Some(mut feedback)) => {
                s.seq += 1;
                feedback.presented(when, Refresh::Fixed(s.refresh), s.seq, kind);
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(%err, "frame submission failed"),
        }
        self.kms_render(crtc);
    }
}

/// Lays out the elements, lets the DrmCompositor assign planes and composite
/// the rest. Returns the policy's frame (for `msg planes`) and what the
/// compositor did.
fn render_frame(
    state: &Tessera,
    kms: &mut Kms,
    crtc: crtc::Handle,
) -> Result<(scanout::Frame, Placed), String> {
    let Kms {
        gpu,
        programs,
        surfaces,
        ..
    } = kms;
    let s = surfaces.get_mut(&crtc).ok_or("no such CRTC")?;
    let output = s.output.clone();
    let renderer = &mut gpu.renderer;
    let decorations = GlesRenderer::decoration_programs(Some(programs));
    let size = crate::backend::framebuffer_size(&output).ok_or("output has no mode")?;
    let scanout::PlannedFrame {
        frame,
        elements,
        clear,
    } = scanout::plan_output(state, renderer, &output, &decorations, size, true);
    let backoff = s.seq < s.backoff_until;
    let flags = caps::frame_flags(&state.scanout.switches, &state.scanout.caps, backoff);
    let result = s
        .compositor
        .render_frame(renderer, &elements, clear, flags)
        .map_err(|e| format!("render: {e}"))?;
    // Without a fence the kernel can wait on (no syncobj, or a renderer such as
    // llvmpipe that cannot export one), the flip must not go out before the
    // frame is drawn: virtio-gpu copies the buffer to the host at the flip, and
    // a copy taken early stays on screen until something else changes. smithay
    // leaves this wait to the caller of `render_frame`.
    if result.needs_sync()
        && let PrimaryPlaneElement::Swapchain(primary) = &result.primary_element
        && let Err(err) = primary.sync.wait()
    {
        tracing::debug!(?err, "waiting for the frame to be drawn was interrupted");
    }
    let mut on_planes: HashSet<u64> = result
        .overlay_elements
        .iter()
        .map(|e| scanout::hash_id(e.id()))
        .chain(result.cursor_element.map(|e| scanout::hash_id(e.id())))
        .collect();
    if let PrimaryPlaneElement::Element(e) = &result.primary_element {
        on_planes.insert(scanout::hash_id(e.id()));
    }
    let placed = Placed {
        empty: result.is_empty,
        primary_client: matches!(result.primary_element, PrimaryPlaneElement::Element(_)),
        overlays: result.overlay_elements.len() as u64,
        cursor: result.cursor_element.is_some(),
        on_planes,
        planes_allowed: !backoff,
    };
    Ok((frame, placed))
}

/// How long an idle output waits before it draws what woke it: not at all when
/// its last frame is a refresh old or more, else until it is, so the output never
/// draws faster than its rate.
fn wake_delay(last_render: Option<Instant>, now: Instant, refresh: Duration) -> Duration {
    last_render.map_or(Duration::ZERO, |last| {
        (last + refresh).saturating_duration_since(now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFRESH: Duration = Duration::from_micros(16_667);

    #[test]
    fn an_output_that_never_drew_draws_at_once() {
        assert_eq!(wake_delay(None, Instant::now(), REFRESH), Duration::ZERO);
    }

    #[test]
    fn an_output_idle_for_a_refresh_or_more_draws_at_once() {
        let last = Instant::now();
        assert_eq!(
            wake_delay(Some(last), last + REFRESH, REFRESH),
            Duration::ZERO
        );
        let much_later = last + Duration::from_secs(30);
        assert_eq!(wake_delay(Some(last), much_later, REFRESH), Duration::ZERO);
    }

    #[test]
    fn a_wake_right_after_a_frame_waits_out_the_refresh() {
        let last = Instant::now();
        let now = last + Duration::from_millis(4);
        assert_eq!(
            wake_delay(Some(last), now, REFRESH),
            REFRESH - Duration::from_millis(4)
        );
        assert_eq!(wake_delay(Some(last), last, REFRESH), REFRESH);
    }
}
