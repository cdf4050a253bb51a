//! Plane capability tables for the GPUs Tessera targets, written from what is
//! public: the drivers' plane format lists in the kernel (i915 `skl_planar_formats`
//! and `gen12` modifier lists, amdgpu_dm `overlay_formats`, msm DPU `plane_formats`
//! and `plane_formats_yuv`, vc4 `hvs_formats` and `vc4_format_modifiers`, rockchip
//! VOP2 cluster/esmart lists, virtio-gpu `virtio_gpu_formats`) and drmdb dumps. They
//! are trimmed to the formats that matter for the policy; the tests and the
//! headless backend's `--plane-table` use them in place of real hardware.

use super::{
    DeviceCaps, FormatSet, MOD_INVALID, MOD_LINEAR, PlaneCaps, PlaneFormat, PlaneKind, Rotations,
    fourcc,
};

pub const ARGB8888: u32 = fourcc(b"AR24");
pub const XRGB8888: u32 = fourcc(b"XR24");
pub const ABGR8888: u32 = fourcc(b"AB24");
pub const XBGR8888: u32 = fourcc(b"XB24");
pub const RGB565: u32 = fourcc(b"RG16");
pub const XRGB2101010: u32 = fourcc(b"XR30");
pub const NV12: u32 = fourcc(b"NV12");
pub const P010: u32 = fourcc(b"P010");
pub const YUV420: u32 = fourcc(b"YU12");

/// Intel: X/Y tiling, and gen12 render-compression (CCS) modifiers.
pub const I915_X_TILED: u64 = 0x0100_0000_0000_0001;
pub const I915_Y_TILED: u64 = 0x0100_0000_0000_0002;
pub const I915_Y_TILED_GEN12_RC_CCS: u64 = 0x0100_0000_0000_0006;
pub const I915_Y_TILED_GEN12_MC_CCS: u64 = 0x0100_0000_0000_0007;
/// AMD GFX10.3 64K_R_X with DCC (one representative of amdgpu's family).
pub const AMD_GFX10_3_DCC: u64 = 0x0200_0000_1896_7b03;
pub const AMD_GFX10_3_R_X: u64 = 0x0200_0000_1880_1b03;
/// DRM_FORMAT_MOD_QCOM_COMPRESSED (UBWC).
pub const QCOM_COMPRESSED: u64 = 0x0500_0000_0000_0001;
/// DRM_FORMAT_MOD_BROADCOM_VC4_T_TILED.
pub const BROADCOM_VC4_T_TILED: u64 = 0x0700_0000_0000_0001;
/// DRM_FORMAT_MOD_BROADCOM_SAND128 (column height 0: the driver default).
pub const BROADCOM_SAND128: u64 = 0x0700_0000_0000_0004;
/// DRM_FORMAT_MOD_ARM_AFBC(16x16 | YTR | SPARSE).
pub const ARM_AFBC_16X16_YTR_SPARSE: u64 = 0x0800_0000_0000_0051;
/// NVIDIA block-linear, 2D, page kind 0xfe, log2 height 4.
pub const NVIDIA_BLOCK_LINEAR: u64 = 0x0300_0000_00fe_6014;

/// A named table.
pub struct CapabilityTable {
    pub name: &'static str,
    pub about: &'static str,
    pub build: fn() -> DeviceCaps,
}

pub const TABLES: &[CapabilityTable] = &[
    CapabilityTable {
        name: "intel",
        about: "i915 gen12 (Tiger Lake) pipe: primary, 4 overlays with CCS, 256px cursor",
        build: intel_gen12,
    },
    CapabilityTable {
        name: "amd",
        about: "amdgpu DCN3: primary, one overlay, 256px cursor",
        build: amdgpu_dcn3,
    },
    CapabilityTable {
        name: "adreno",
        about: "msm DPU (sc7180 Chromebook): DMA overlays with few formats, one VIG with YUV",
        build: msm_dpu,
    },
    CapabilityTable {
        name: "vc4",
        about: "vc4 HVS (Raspberry Pi 4): many scaling overlays, T-tiled and SAND128",
        build: vc4_pi4,
    },
    CapabilityTable {
        name: "mali",
        about: "rockchip VOP2 (RK3588, Mali-G610): AFBC cluster planes and linear esmart planes",
        build: rockchip_vop2,
    },
    CapabilityTable {
        name: "nvidia",
        about: "nvidia-drm: overlays exist but are quirked off",
        build: nvidia,
    },
    CapabilityTable {
        name: "virtio-gpu",
        about: "virtio-gpu (QEMU): primary and 64px cursor only, linear",
        build: virtio_gpu,
    },
];

pub fn table_by_name(name: &str) -> Option<&'static CapabilityTable> {
    TABLES.iter().find(|t| t.name == name)
}

/// Every (format, modifier) pair of the cross product.
fn formats(fourccs: &[u32], modifiers: &[u64]) -> FormatSet {
    fourccs
        .iter()
        .flat_map(|&f| {
            modifiers.iter().map(move |&m| PlaneFormat {
                fourcc: f,
                modifier: m,
            })
        })
        .collect()
}

fn union(a: FormatSet, b: FormatSet) -> FormatSet {
    a.union(&b).copied().collect()
}

const ALL_ROTATIONS: Rotations = Rotations(0b11_1111);
const ROTATE_0_180: Rotations = Rotations(Rotations::ROTATE_0 | Rotations::ROTATE_180);
const ROTATE_0: Rotations = Rotations(Rotations::ROTATE_0);

#[allow(clippy::too_many_arguments)]
fn plane(
    id: u32,
    kind: PlaneKind,
    formats: FormatSet,
    zpos: Option<u32>,
    scaling: bool,
    alpha: bool,
    rotations: Rotations,
    max_size: Option<(u32, u32)>,
) -> PlaneCaps {
    PlaneCaps {
        id,
        kind,
        formats,
        zpos,
        scaling,
        alpha,
        rotations,
        max_size,
    }
}

fn cursor(id: u32, zpos: Option<u32>, size: u32) -> PlaneCaps {
    plane(
        id,
        PlaneKind::Cursor,
        formats(&[ARGB8888], &[MOD_LINEAR]),
        zpos,
        false,
        true,
        ROTATE_0,
        Some((size, size)),
    )
}

fn intel_gen12() -> DeviceCaps {
    let rgb = [XRGB8888, ARGB8888, XBGR8888, ABGR8888, XRGB2101010, RGB565];
    let tiled = [
        MOD_LINEAR,
        I915_X_TILED,
        I915_Y_TILED,
        I915_Y_TILED_GEN12_RC_CCS,
    ];
    let base = union(
        formats(&rgb, &tiled),
        formats(&[NV12, P010], &[MOD_LINEAR, I915_Y_TILED]),
    );
    // Media compression only on YUV, and only on the planes with a YUV path.
    let yuv_mc = formats(&[NV12, P010], &[I915_Y_TILED_GEN12_MC_CCS]);
    let mut planes = vec![plane(
        31,
        PlaneKind::Primary,
        union(base.clone(), yuv_mc.clone()),
        Some(0),
        true,
        true,
        ALL_ROTATIONS,
        None,
    )];
    for (i, id) in [40, 49, 58, 67].into_iter().enumerate() {
        let f = if i < 2 {
            union(base.clone(), yuv_mc.clone())
        } else {
            // The upper sprites have no NV12 (gen12 has YUV on the first planes only).
            formats(&rgb, &tiled)
        };
        planes.push(plane(
            id,
            PlaneKind::Overlay,
            f,
            Some(i as u32 + 1),
            true,
            true,
            ALL_ROTATIONS,
            None,
        ));
    }
    planes.push(cursor(76, Some(6), 256));
    DeviceCaps::new("i915", planes)
}

fn amdgpu_dcn3() -> DeviceCaps {
    let rgb = [XRGB8888, ARGB8888, XBGR8888, ABGR8888, XRGB2101010, RGB565];
    let mods = [MOD_LINEAR, AMD_GFX10_3_R_X, AMD_GFX10_3_DCC];
    let primary = union(formats(&rgb, &mods), formats(&[NV12, P010], &[MOD_LINEAR]));
    // amdgpu_dm's overlay plane takes only the 8-bit RGB formats.
    let overlay = formats(&[XRGB8888, ARGB8888, XBGR8888, ABGR8888], &mods);
    DeviceCaps::new(
        "amdgpu",
        vec![
            plane(
                55,
                PlaneKind::Primary,
                primary,
                Some(0),
                true,
                true,
                ROTATE_0,
                None,
            ),
            plane(
                58,
                PlaneKind::Overlay,
                overlay,
                Some(1),
                true,
                true,
                ROTATE_0,
                None,
            ),
            cursor(61, Some(255), 256),
        ],
    )
}

fn msm_dpu() -> DeviceCaps {
    let rgb = [ARGB8888, XRGB8888, ABGR8888, XBGR8888, RGB565];
    let ubwc = [MOD_LINEAR, QCOM_COMPRESSED];
    // DMA pipes: RGB only, no scaling; UBWC only on the 8888 formats.
    let dma = union(
        formats(&rgb, &[MOD_LINEAR]),
        formats(
            &[ARGB8888, XRGB8888, ABGR8888, XBGR8888],
            &[QCOM_COMPRESSED],
        ),
    );
    // The VIG pipe adds YUV and scaling.
    let vig = union(formats(&rgb, &[MOD_LINEAR]), formats(&[NV12], &ubwc));
    DeviceCaps::new(
        "msm",
        vec![
            plane(
                33,
                PlaneKind::Primary,
                dma.clone(),
                Some(0),
                false,
                true,
                ROTATE_0_180,
                None,
            ),
            plane(
                39,
                PlaneKind::Overlay,
                vig,
                Some(1),
                true,
                true,
                ROTATE_0_180,
                None,
            ),
            plane(
                45,
                PlaneKind::Overlay,
                dma,
                Some(2),
                false,
                true,
                ROTATE_0_180,
                None,
            ),
            cursor(51, Some(3), 512),
        ],
    )
}

fn vc4_pi4() -> DeviceCaps {
    let rgb = [ARGB8888, XRGB8888, ABGR8888, XBGR8888, RGB565];
    let f = union(
        union(
            formats(&rgb, &[MOD_LINEAR, BROADCOM_VC4_T_TILED]),
            formats(&[NV12, YUV420], &[MOD_LINEAR]),
        ),
        formats(&[NV12, P010], &[BROADCOM_SAND128]),
    );
    let mut planes = vec![plane(
        61,
        PlaneKind::Primary,
        f.clone(),
        Some(0),
        true,
        true,
        ROTATE_0_180,
        None,
    )];
    for i in 0..8u32 {
        planes.push(plane(
            70 + i,
            PlaneKind::Overlay,
            f.clone(),
            Some(i + 1),
            true,
            true,
            ROTATE_0_180,
            None,
        ));
    }
    planes.push(cursor(90, Some(32), 256));
    DeviceCaps::new("vc4", planes)
}

fn rockchip_vop2() -> DeviceCaps {
    let rgb = [ARGB8888, XRGB8888, ABGR8888, XBGR8888, RGB565];
    // Cluster windows read AFBC only; esmart windows read linear RGB and YUV.
    let cluster = formats(&rgb, &[ARM_AFBC_16X16_YTR_SPARSE]);
    let esmart = union(
        formats(&rgb, &[MOD_LINEAR]),
        formats(&[NV12, YUV420], &[MOD_LINEAR]),
    );
    DeviceCaps::new(
        "rockchip",
        vec![
            plane(
                40,
                PlaneKind::Primary,
                cluster.clone(),
                Some(0),
                true,
                true,
                ROTATE_0,
                None,
            ),
            plane(
                54,
                PlaneKind::Overlay,
                cluster,
                Some(1),
                true,
                true,
                ROTATE_0,
                None,
            ),
            plane(
                68,
                PlaneKind::Overlay,
                esmart.clone(),
                Some(2),
                true,
                true,
                ROTATE_0,
                None,
            ),
            plane(
                82,
                PlaneKind::Overlay,
                esmart,
                Some(3),
                true,
                true,
                ROTATE_0,
                None,
            ),
        ],
    )
}

fn nvidia() -> DeviceCaps {
    let rgb = [ARGB8888, XRGB8888, ABGR8888, XBGR8888, XRGB2101010];
    let f = formats(&rgb, &[MOD_LINEAR, NVIDIA_BLOCK_LINEAR]);
    DeviceCaps::new(
        "nvidia-drm",
        vec![
            plane(
                80,
                PlaneKind::Primary,
                f.clone(),
                Some(0),
                true,
                true,
                ALL_ROTATIONS,
                None,
            ),
            plane(
                84,
                PlaneKind::Overlay,
                f,
                Some(1),
                true,
                true,
                ALL_ROTATIONS,
                None,
            ),
            cursor(88, Some(2), 256),
        ],
    )
}

fn virtio_gpu() -> DeviceCaps {
    // virtio-gpu has no modifier support: buffers have the implicit layout.
    let f = formats(&[XRGB8888, ARGB8888], &[MOD_INVALID]);
    DeviceCaps::new(
        "virtio_gpu",
        vec![
            plane(
                31,
                PlaneKind::Primary,
                f.clone(),
                None,
                false,
                false,
                ROTATE_0,
                None,
            ),
            plane(
                34,
                PlaneKind::Cursor,
                formats(&[ARGB8888], &[MOD_INVALID]),
                None,
                false,
                true,
                ROTATE_0,
                Some((64, 64)),
            ),
        ],
    )
}
