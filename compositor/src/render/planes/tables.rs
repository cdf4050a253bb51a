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

/// A plane in the common shape: it has a zpos, scales, blends alpha, and does not
/// rotate or limit the buffer size. The builder methods below note the exceptions.
fn plane(id: u32, kind: PlaneKind, formats: FormatSet, zpos: u32) -> PlaneCaps {
    PlaneCaps {
        id,
        kind,
        formats,
        zpos: Some(zpos),
        scaling: true,
        alpha: true,
        rotations: ROTATE_0,
        max_size: None,
    }
}

impl PlaneCaps {
    fn no_scaling(self) -> Self {
        Self {
            scaling: false,
            ..self
        }
    }

    fn no_alpha(self) -> Self {
        Self {
            alpha: false,
            ..self
        }
    }

    fn no_zpos(self) -> Self {
        Self { zpos: None, ..self }
    }

    fn rotating(self, rotations: Rotations) -> Self {
        Self { rotations, ..self }
    }

    fn at_most(self, size: u32) -> Self {
        Self {
            max_size: Some((size, size)),
            ..self
        }
    }
}

/// An ARGB8888 cursor plane of `size` x `size`.
fn cursor(id: u32, zpos: u32, size: u32, modifier: u64) -> PlaneCaps {
    plane(
        id,
        PlaneKind::Cursor,
        formats(&[ARGB8888], &[modifier]),
        zpos,
    )
    .no_scaling()
    .at_most(size)
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
    let with_yuv = union(base, formats(&[NV12, P010], &[I915_Y_TILED_GEN12_MC_CCS]));
    // The upper sprites have no NV12 (gen12 has YUV on the first planes only).
    let rgb_only = formats(&rgb, &tiled);
    let planes = vec![
        plane(31, PlaneKind::Primary, with_yuv.clone(), 0).rotating(ALL_ROTATIONS),
        plane(40, PlaneKind::Overlay, with_yuv.clone(), 1).rotating(ALL_ROTATIONS),
        plane(49, PlaneKind::Overlay, with_yuv, 2).rotating(ALL_ROTATIONS),
        plane(58, PlaneKind::Overlay, rgb_only.clone(), 3).rotating(ALL_ROTATIONS),
        plane(67, PlaneKind::Overlay, rgb_only, 4).rotating(ALL_ROTATIONS),
        cursor(76, 6, 256, MOD_LINEAR),
    ];
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
            plane(55, PlaneKind::Primary, primary, 0),
            plane(58, PlaneKind::Overlay, overlay, 1),
            cursor(61, 255, 256, MOD_LINEAR),
        ],
    )
}

fn msm_dpu() -> DeviceCaps {
    let rgb = [ARGB8888, XRGB8888, ABGR8888, XBGR8888, RGB565];
    // DMA pipes: RGB only, no scaling; UBWC only on the 8888 formats.
    let dma = union(
        formats(&rgb, &[MOD_LINEAR]),
        formats(
            &[ARGB8888, XRGB8888, ABGR8888, XBGR8888],
            &[QCOM_COMPRESSED],
        ),
    );
    // The VIG pipe adds YUV and scaling.
    let vig = union(
        formats(&rgb, &[MOD_LINEAR]),
        formats(&[NV12], &[MOD_LINEAR, QCOM_COMPRESSED]),
    );
    DeviceCaps::new(
        "msm",
        vec![
            plane(33, PlaneKind::Primary, dma.clone(), 0)
                .no_scaling()
                .rotating(ROTATE_0_180),
            plane(39, PlaneKind::Overlay, vig, 1).rotating(ROTATE_0_180),
            plane(45, PlaneKind::Overlay, dma, 2)
                .no_scaling()
                .rotating(ROTATE_0_180),
            cursor(51, 3, 512, MOD_LINEAR),
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
    let hvs = |id, kind, zpos| plane(id, kind, f.clone(), zpos).rotating(ROTATE_0_180);
    let mut planes = vec![hvs(61, PlaneKind::Primary, 0)];
    planes.extend((0..8u32).map(|i| hvs(70 + i, PlaneKind::Overlay, i + 1)));
    planes.push(cursor(90, 32, 256, MOD_LINEAR));
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
            plane(40, PlaneKind::Primary, cluster.clone(), 0),
            plane(54, PlaneKind::Overlay, cluster, 1),
            plane(68, PlaneKind::Overlay, esmart.clone(), 2),
            plane(82, PlaneKind::Overlay, esmart, 3),
        ],
    )
}

fn nvidia() -> DeviceCaps {
    let rgb = [ARGB8888, XRGB8888, ABGR8888, XBGR8888, XRGB2101010];
    let f = formats(&rgb, &[MOD_LINEAR, NVIDIA_BLOCK_LINEAR]);
    DeviceCaps::new(
        "nvidia-drm",
        vec![
            plane(80, PlaneKind::Primary, f.clone(), 0).rotating(ALL_ROTATIONS),
            plane(84, PlaneKind::Overlay, f, 1).rotating(ALL_ROTATIONS),
            cursor(88, 2, 256, MOD_LINEAR),
        ],
    )
}

fn virtio_gpu() -> DeviceCaps {
    // virtio-gpu has no modifier support: buffers have the implicit layout, and it
    // exposes no zpos.
    let f = formats(&[XRGB8888, ARGB8888], &[MOD_INVALID]);
    DeviceCaps::new(
        "virtio_gpu",
        vec![
            plane(31, PlaneKind::Primary, f, 0)
                .no_scaling()
                .no_alpha()
                .no_zpos(),
            cursor(34, 0, 64, MOD_INVALID).no_zpos(),
        ],
    )
}
