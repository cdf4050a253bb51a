//! zwp_linux_dmabuf_v1 at version 5: the global with its default feedback, the
//! per-surface feedback the plane policy decides, and the checks on buffer params
//! that smithay leaves to the compositor.
//!
//! smithay validates plane indices, offsets and strides against the fd size and
//! the fourcc; it does not check the modifier, the plane count a format needs, a
//! stride shorter than a row, or planes that overlap in one buffer. Those are
//! [`check_params`], pure, so the hostile-input tests can reach each branch.

use std::collections::HashMap;
use std::os::fd::AsFd;

use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::allocator::format::get_bpp;
use smithay::backend::allocator::{Buffer, Format, Fourcc, Modifier};
use smithay::reexports::wayland_protocols::wp::linux_dmabuf::zv1::server::{
    zwp_linux_buffer_params_v1::{
        Error as ParamsError, Request as params_request, ZwpLinuxBufferParamsV1,
    },
    zwp_linux_dmabuf_feedback_v1::{TrancheFlags, ZwpLinuxDmabufFeedbackV1},
    zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
};
use smithay::reexports::wayland_server::backend::ClientId;
use smithay::reexports::wayland_server::protocol::wl_buffer::WlBuffer;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::{
    Client, DataInit, Dispatch, DisplayHandle, Resource, delegate_dispatch,
    delegate_global_dispatch,
};
use smithay::wayland::dmabuf::{
    DmabufData, DmabufFeedback, DmabufFeedbackBuilder, DmabufFeedbackData, DmabufGlobal,
    DmabufGlobalData, DmabufHandler, DmabufParamsData, DmabufState, ImportNotifier,
};

use crate::render::planes::{self, FormatSet, MOD_LINEAR, PlaneFormat, SurfaceFeedback};
use crate::sandbox::SandboxPolicy;
use crate::state::Tessera;

/// The dmabuf global and what its feedback is built from.
pub struct DmabufGlobals {
    pub state: DmabufState,
    pub global: DmabufGlobal,
    /// The DRM device clients should allocate on; 0 where there is none (headless
    /// on a software renderer), which clients read as "no device preference".
    pub main_device: libc::dev_t,
    /// What the renderer can import: the render tranche.
    pub render_formats: FormatSet,
    /// A DmabufFeedback owns a sealed memfd with its format table, so equal
    /// answers of the policy share one instead of making a file per surface.
    built: HashMap<SurfaceFeedback, DmabufFeedback>,
}

impl DmabufGlobals {
    pub fn new(
        dh: &DisplayHandle,
        sandbox: &SandboxPolicy,
        main_device: libc::dev_t,
        render_formats: FormatSet,
    ) -> anyhow::Result<Self> {
        let default = planes::default_feedback(&render_formats);
        let feedback = build(main_device, &default)
            .map_err(|e| anyhow::anyhow!("dmabuf feedback format table: {e}"))?;
        let mut state = DmabufState::new();
        let global = state.create_global_with_filter_and_default_feedback::<Tessera, _>(
            dh,
            &feedback,
            sandbox.filter("zwp_linux_dmabuf_v1"),
        );
        tracing::info!(
            main_device,
            formats = render_formats.len(),
            "zwp_linux_dmabuf_v1 v5 with default feedback"
        );
        let mut built = HashMap::new();
        built.insert(default, feedback);
        Ok(Self {
            state,
            global,
            main_device,
            render_formats,
            built,
        })
    }

    /// The smithay feedback for one policy answer.
    pub fn feedback(&mut self, answer: &SurfaceFeedback) -> Option<DmabufFeedback> {
        if let Some(f) = self.built.get(answer) {
            return Some(f.clone());
        }
        match build(self.main_device, answer) {
            Ok(f) => {
                self.built.insert(answer.clone(), f.clone());
                Some(f)
            }
            Err(err) => {
                tracing::warn!(%err, "cannot build dmabuf feedback");
                None
            }
        }
    }
}

fn to_format(f: &PlaneFormat) -> Option<Format> {
    Some(Format {
        code: Fourcc::try_from(f.fourcc).ok()?,
        modifier: Modifier::from(f.modifier),
    })
}

pub fn from_format(f: Format) -> PlaneFormat {
    PlaneFormat {
        fourcc: f.code as u32,
        modifier: f.modifier.into(),
    }
}

/// The policy's tranches as protocol feedback. The policy puts the render
/// tranche last, which is where smithay's builder puts its main tranche.
fn build(main_device: libc::dev_t, answer: &SurfaceFeedback) -> std::io::Result<DmabufFeedback> {
    let empty = FormatSet::new();
    let (render, preferred) = match answer.tranches.split_last() {
        Some((last, rest)) if !last.scanout => (&last.formats, rest),
        _ => (&empty, answer.tranches.as_slice()),
    };
    let mut builder = DmabufFeedbackBuilder::new(main_device, render.iter().filter_map(to_format));
    for tranche in preferred {
        let flags = if tranche.scanout {
            TrancheFlags::Scanout
        } else {
            TrancheFlags::empty()
        };
        builder = builder.add_preference_tranche(
            main_device,
            Some(flags),
            tranche.formats.iter().filter_map(to_format),
        );
    }
    builder.build()
}

/// One plane of a buffer as the client described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneLayout {
    /// (st_dev, st_ino) of the fd: planes in one file share it.
    pub file: Option<(u64, u64)>,
    pub offset: u32,
    pub stride: u32,
}

/// A `create` or `create_immed` request after smithay's own checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsLayout {
    pub format: PlaneFormat,
    pub width: i32,
    pub height: i32,
    pub planes: Vec<PlaneLayout>,
}

/// Why a buffer is refused; each maps onto the protocol's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("format {fourcc:#010x} with modifier {modifier:#x} is not importable here")]
    InvalidFormat { fourcc: u32, modifier: u64 },
    #[error("{0}x{1} is not a buffer size")]
    InvalidDimensions(i32, i32),
    #[error("the format has {needed} planes, {given} were given")]
    Incomplete { needed: usize, given: usize },
    #[error("plane {plane}: stride {stride} is shorter than a row of {row} bytes")]
    StrideTooShort { plane: usize, stride: u32, row: u64 },
    #[error("planes {0} and {1} overlap in one buffer")]
    Overlap(usize, usize),
}

/// How many planes a format has (aux planes of a modifier come on top).
fn planes_of(code: Fourcc) -> Option<usize> {
    use Fourcc as F;
    match code {
        F::Nv12 | F::Nv21 | F::Nv16 | F::Nv61 | F::Nv24 | F::Nv42 | F::P010 | F::P012 | F::P016 => {
            Some(2)
        }
        F::Yuv420 | F::Yvu420 | F::Yuv422 | F::Yvu422 | F::Yuv444 | F::Yvu444 => Some(3),
        other => get_bpp(other).map(|_| 1),
    }
}

/// The rows plane `index` has: 4:2:0 chroma planes are half height.
fn rows_of(code: Fourcc, index: usize, height: u32) -> u32 {
    use Fourcc as F;
    let half = matches!(
        code,
        F::Nv12 | F::Nv21 | F::P010 | F::P012 | F::P016 | F::Yuv420 | F::Yvu420
    );
    if index > 0 && half {
        height.div_ceil(2)
    } else {
        height
    }
}

/// The checks smithay does not make. Layout checks apply to linear buffers only:
/// a tiled or compressed layout's size is the driver's business.
pub fn check_params(p: &ParamsLayout, render: &FormatSet) -> Result<(), Refusal> {
    if p.width < 1 || p.height < 1 {
        return Err(Refusal::InvalidDimensions(p.width, p.height));
    }
    if !render.contains(&p.format) {
        return Err(Refusal::InvalidFormat {
            fourcc: p.format.fourcc,
            modifier: p.format.modifier,
        });
    }
    let Ok(code) = Fourcc::try_from(p.format.fourcc) else {
        return Err(Refusal::InvalidFormat {
            fourcc: p.format.fourcc,
            modifier: p.format.modifier,
        });
    };
    if let Some(needed) = planes_of(code)
        && p.planes.len() < needed
    {
        return Err(Refusal::Incomplete {
            needed,
            given: p.planes.len(),
        });
    }
    if p.format.modifier != MOD_LINEAR {
        return Ok(());
    }
    if p.planes.len() == 1
        && let Some(bpp) = get_bpp(code)
    {
        let row = (p.width as u64 * bpp as u64).div_ceil(8);
        if u64::from(p.planes[0].stride) < row {
            return Err(Refusal::StrideTooShort {
                plane: 0,
                stride: p.planes[0].stride,
                row,
            });
        }
    }
    let span = |i: usize, plane: &PlaneLayout| {
        let start = u64::from(plane.offset);
        let rows = u64::from(rows_of(code, i, p.height as u32));
        (start, start + u64::from(plane.stride) * rows)
    };
    for (i, a) in p.planes.iter().enumerate() {
        for (j, b) in p.planes.iter().enumerate().skip(i + 1) {
            if a.file.is_none() || a.file != b.file {
                continue;
            }
            let (a0, a1) = span(i, a);
            let (b0, b1) = span(j, b);
            if a0 < b1 && b0 < a1 {
                return Err(Refusal::Overlap(i, j));
            }
        }
    }
    Ok(())
}

fn file_id(fd: impl AsFd) -> Option<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    use std::os::fd::AsRawFd;
    // SAFETY: fstat writes a whole stat on success and the fd is borrowed alive.
    let rc = unsafe { libc::fstat(fd.as_fd().as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: fstat succeeded.
    let st = unsafe { st.assume_init() };
    Some((st.st_dev, st.st_ino))
}

pub fn layout_of(dmabuf: &Dmabuf) -> ParamsLayout {
    let size = dmabuf.size();
    let planes = dmabuf
        .handles()
        .zip(dmabuf.offsets())
        .zip(dmabuf.strides())
        .map(|((fd, offset), stride)| PlaneLayout {
            file: file_id(fd),
            offset,
            stride,
        })
        .collect();
    ParamsLayout {
        format: from_format(dmabuf.format()),
        width: size.w,
        height: size.h,
        planes,
    }
}

impl DmabufHandler for Tessera {
    fn dmabuf_state(&mut self) -> &mut DmabufState {
        &mut self.dmabuf.state
    }

    fn dmabuf_imported(
        &mut self,
        _global: &DmabufGlobal,
        dmabuf: Dmabuf,
        notifier: ImportNotifier,
    ) {
        let layout = layout_of(&dmabuf);
        if let Err(refusal) = check_params(&layout, &self.dmabuf.render_formats) {
            tracing::debug!(%refusal, "dmabuf refused");
            match refusal {
                Refusal::InvalidFormat { .. } => notifier.invalid_format(),
                Refusal::InvalidDimensions(..) => notifier.invalid_dimensions(),
                Refusal::Incomplete { .. } => notifier.incomplete(),
                Refusal::StrideTooShort { .. } | Refusal::Overlap(..) => notifier.failed(),
            }
            return;
        }
        // The renderer maps or imports it now, so a buffer it cannot use is
        // refused at creation (`failed`) rather than failing every frame later.
        if let Err(err) = self.backend.import_dmabuf(&dmabuf) {
            tracing::debug!(%err, "dmabuf import failed");
            notifier.failed();
            return;
        }
        if notifier.successful::<Tessera>().is_err() {
            tracing::debug!("dmabuf client went away during import");
        }
    }

    fn new_surface_feedback(
        &mut self,
        surface: &WlSurface,
        _global: &DmabufGlobal,
    ) -> Option<DmabufFeedback> {
        let answer = self
            .scanout
            .feedback_for(surface, &self.dmabuf.render_formats);
        self.dmabuf.feedback(&answer)
    }
}

// smithay's `delegate_dmabuf!`, except for buffer params: smithay posts
// `invalid_dimensions` for a width or height below 1 but then goes on to build a
// Dmabuf of that size, which panics (a debug assertion in `Size::new`); found by
// the proptest suite. Tessera refuses such a request before smithay sees it.
delegate_global_dispatch!(Tessera: [ZwpLinuxDmabufV1: DmabufGlobalData] => DmabufState);
delegate_dispatch!(Tessera: [ZwpLinuxDmabufV1: DmabufData] => DmabufState);
delegate_dispatch!(Tessera: [WlBuffer: Dmabuf] => DmabufState);
delegate_dispatch!(Tessera: [ZwpLinuxDmabufFeedbackV1: DmabufFeedbackData] => DmabufState);

impl Dispatch<ZwpLinuxBufferParamsV1, DmabufParamsData> for Tessera {
    fn request(
        state: &mut Self,
        client: &Client,
        params: &ZwpLinuxBufferParamsV1,
        request: params_request,
        data: &DmabufParamsData,
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        if let params_request::Create { width, height, .. }
        | params_request::CreateImmed { width, height, .. } = &request
            && (*width < 1 || *height < 1)
        {
            // The client is dead after this, so the new wl_buffer of a
            // create_immed needs no data.
            params.post_error(
                ParamsError::InvalidDimensions,
                format!("{width}x{height} is not a buffer size"),
            );
            return;
        }
        <DmabufState as Dispatch<ZwpLinuxBufferParamsV1, DmabufParamsData, Self>>::request(
            state, client, params, request, data, dh, data_init,
        );
    }

    fn destroyed(
        state: &mut Self,
        client: ClientId,
        params: &ZwpLinuxBufferParamsV1,
        data: &DmabufParamsData,
    ) {
        <DmabufState as Dispatch<ZwpLinuxBufferParamsV1, DmabufParamsData, Self>>::destroyed(
            state, client, params, data,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::planes::fourcc;

    const XR24: u32 = fourcc(b"XR24");
    const NV12: u32 = fourcc(b"NV12");

    fn render() -> FormatSet {
        [XR24, NV12]
            .into_iter()
            .map(|fourcc| PlaneFormat {
                fourcc,
                modifier: MOD_LINEAR,
            })
            .collect()
    }

    fn params(fourcc: u32, planes: &[(u32, u32)]) -> ParamsLayout {
        ParamsLayout {
            format: PlaneFormat {
                fourcc,
                modifier: MOD_LINEAR,
            },
            width: 64,
            height: 32,
            planes: planes
                .iter()
                .map(|&(offset, stride)| PlaneLayout {
                    file: Some((1, 7)),
                    offset,
                    stride,
                })
                .collect(),
        }
    }

    #[test]
    fn a_well_formed_linear_buffer_passes() {
        assert_eq!(check_params(&params(XR24, &[(0, 256)]), &render()), Ok(()));
        // NV12: a 64x32 luma plane, then a 64x16 chroma plane right after it.
        let nv12 = params(NV12, &[(0, 64), (64 * 32, 64)]);
        assert_eq!(check_params(&nv12, &render()), Ok(()));
    }

    #[test]
    fn unknown_modifier_and_format_are_invalid_format() {
        let mut p = params(XR24, &[(0, 256)]);
        p.format.modifier = 0x0100_0000_0000_0001; // I915_FORMAT_MOD_X_TILED
        assert!(matches!(
            check_params(&p, &render()),
            Err(Refusal::InvalidFormat { .. })
        ));
        let p = params(fourcc(b"AR30"), &[(0, 256)]);
        assert!(matches!(
            check_params(&p, &render()),
            Err(Refusal::InvalidFormat { .. })
        ));
    }

    #[test]
    fn missing_planes_are_incomplete() {
        let p = params(NV12, &[(0, 64)]);
        assert_eq!(
            check_params(&p, &render()),
            Err(Refusal::Incomplete {
                needed: 2,
                given: 1
            })
        );
    }

    #[test]
    fn short_strides_and_overlaps_fail() {
        assert!(matches!(
            check_params(&params(XR24, &[(0, 255)]), &render()),
            Err(Refusal::StrideTooShort { row: 256, .. })
        ));
        // The chroma plane starts inside the luma plane.
        let p = params(NV12, &[(0, 64), (64 * 31, 64)]);
        assert_eq!(check_params(&p, &render()), Err(Refusal::Overlap(0, 1)));
        // The same offsets in two different files do not overlap.
        let mut p = params(NV12, &[(0, 64), (0, 64)]);
        p.planes[1].file = Some((1, 8));
        assert_eq!(check_params(&p, &render()), Ok(()));
    }

    #[test]
    fn zero_sizes_are_invalid_dimensions() {
        let mut p = params(XR24, &[(0, 256)]);
        p.height = 0;
        assert_eq!(
            check_params(&p, &render()),
            Err(Refusal::InvalidDimensions(64, 0))
        );
    }

    #[test]
    fn feedback_keeps_the_policy_order_with_render_last() {
        let answer = SurfaceFeedback {
            tranches: vec![
                planes::Tranche {
                    formats: render(),
                    scanout: true,
                    plane: Some(planes::PlaneKind::Primary),
                },
                planes::Tranche {
                    formats: render(),
                    scanout: false,
                    plane: None,
                },
            ],
        };
        let a = build(0, &answer).unwrap();
        let b = build(0, &planes::default_feedback(&render())).unwrap();
        assert_ne!(a, b, "a scanout tranche must not be dropped");
        assert_eq!(a, build(0, &answer).unwrap());
    }
}
