//! Which connector drives which CRTC at which mode: pure decisions over what
//! the DRM device reported, so they can be tested without a GPU.

use tessera_config::compositor::Mode as ModeConfig;

/// One mode a connector offers, as the kernel lists it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModeCandidate {
    pub width: u16,
    pub height: u16,
    /// Millihertz, computed from the clock and totals (the kernel's `vrefresh`
    /// is rounded to whole hertz, which makes 59.94 and 60 indistinguishable).
    pub refresh_mhz: u32,
    pub preferred: bool,
}

/// Picks the mode for a connector: the configured size at the refresh nearest
/// the configured one (the highest without one); else the preferred mode; else
/// the largest. None when the connector lists no modes.
///
/// A configured size the monitor does not offer is not an error: the output
/// still lights up with its preferred mode, and the log says why, as sway does.
pub fn pick_mode(modes: &[ModeCandidate], wanted: Option<&ModeConfig>) -> Option<usize> {
    if let Some(w) = wanted {
        let same_size = modes
            .iter()
            .enumerate()
            .filter(|(_, m)| u32::from(m.width) == w.width && u32::from(m.height) == w.height);
        let best = match w.refresh_hz {
            Some(hz) => {
                let target = (hz * 1000.0).round() as i64;
                same_size.min_by_key(|(_, m)| (i64::from(m.refresh_mhz) - target).abs())
            }
            None => same_size.max_by_key(|(_, m)| (m.preferred, m.refresh_mhz)),
        };
        if let Some((i, _)) = best {
            return Some(i);
        }
    }
    if let Some(i) = modes.iter().position(|m| m.preferred) {
        return Some(i);
    }
    modes
        .iter()
        .enumerate()
        .max_by_key(|(_, m)| (u32::from(m.width) * u32::from(m.height), m.refresh_mhz))
        .map(|(i, _)| i)
}

/// Refresh in millihertz from a mode's timings; the same formula as the
/// kernel's `drm_mode_vrefresh`, without its rounding to whole hertz.
pub fn refresh_mhz(clock_khz: u32, htotal: u16, vtotal: u16, vscan: u16, interlaced: bool) -> u32 {
    let mut total = u64::from(htotal) * u64::from(vtotal);
    if interlaced {
        total /= 2;
    }
    if vscan > 1 {
        total *= u64::from(vscan);
    }
    if total == 0 {
        return 0;
    }
    ((u64::from(clock_khz) * 1_000_000 + total / 2) / total) as u32
}

/// A connected connector waiting for a CRTC: the CRTCs its encoders can drive,
/// as indices into the device's CRTC list.
#[derive(Debug, Clone, PartialEq)]
pub struct CrtcRequest {
    pub connector: u32,
    /// The CRTC the firmware or a previous session left it on; kept when free,
    /// so no modeset is needed for it.
    pub current: Option<usize>,
    pub possible: Vec<usize>,
}

/// Gives every connector a CRTC it can use and that no other connector has.
/// Connectors keep the CRTC they already have; the rest take the first free one
/// they can drive, in connector order (the kernel's order, so names stay put
/// across restarts). A connector left without a CRTC is not in the result.
pub fn assign_crtcs(requests: &[CrtcRequest], taken: &[usize]) -> Vec<(u32, usize)> {
    let mut used: Vec<usize> = taken.to_vec();
    let mut out = Vec::new();
    for r in requests {
        if let Some(c) = r.current
            && r.possible.contains(&c)
            && !used.contains(&c)
        {
            used.push(c);
            out.push((r.connector, c));
        }
    }
    for r in requests {
        if out.iter().any(|(c, _)| *c == r.connector) {
            continue;
        }
        if let Some(&c) = r.possible.iter().find(|c| !used.contains(c)) {
            used.push(c);
            out.push((r.connector, c));
        }
    }
    out
}

/// The output name the way every other compositor spells it: `HDMI-A-1`, `eDP-1`,
/// `Virtual-1` (the kernel's connector type name and per-type index).
pub fn output_name(interface: &str, index: u32) -> String {
    format!("{interface}-{index}")
}

/// The CRTC indices an encoder's `possible_crtcs` bit mask allows.
pub fn crtcs_in_mask(mask: u32, count: usize) -> Vec<usize> {
    (0..count.min(32))
        .filter(|i| mask & (1 << i) != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(w: u16, h: u16, mhz: u32, preferred: bool) -> ModeCandidate {
        ModeCandidate {
            width: w,
            height: h,
            refresh_mhz: mhz,
            preferred,
        }
    }

    fn cfg(s: &str) -> ModeConfig {
        s.parse().unwrap()
    }

    const MONITOR: [ModeCandidate; 5] = [
        ModeCandidate {
            width: 2560,
            height: 1440,
            refresh_mhz: 59_951,
            preferred: true,
        },
        ModeCandidate {
            width: 2560,
            height: 1440,
            refresh_mhz: 143_998,
            preferred: false,
        },
        ModeCandidate {
            width: 1920,
            height: 1080,
            refresh_mhz: 60_000,
            preferred: false,
        },
        ModeCandidate {
            width: 1920,
            height: 1080,
            refresh_mhz: 59_940,
            preferred: false,
        },
        ModeCandidate {
            width: 1024,
            height: 768,
            refresh_mhz: 60_004,
            preferred: false,
        },
    ];

    #[test]
    fn without_config_the_preferred_mode_wins_over_a_faster_one() {
        assert_eq!(pick_mode(&MONITOR, None), Some(0));
    }

    #[test]
    fn a_configured_refresh_picks_the_nearest_of_that_size() {
        assert_eq!(pick_mode(&MONITOR, Some(&cfg("1920x1080@59.94"))), Some(3));
        assert_eq!(pick_mode(&MONITOR, Some(&cfg("1920x1080@60"))), Some(2));
        assert_eq!(pick_mode(&MONITOR, Some(&cfg("2560x1440@144"))), Some(1));
    }

    #[test]
    fn a_configured_size_without_refresh_prefers_the_preferred_then_the_fastest() {
        assert_eq!(pick_mode(&MONITOR, Some(&cfg("2560x1440"))), Some(0));
        assert_eq!(pick_mode(&MONITOR, Some(&cfg("1920x1080"))), Some(2));
    }

    #[test]
    fn a_size_the_monitor_lacks_falls_back_to_the_preferred_mode() {
        assert_eq!(pick_mode(&MONITOR, Some(&cfg("3840x2160@60"))), Some(0));
    }

    #[test]
    fn without_a_preferred_mode_the_largest_is_taken() {
        let modes = [
            mode(800, 600, 60_000, false),
            mode(1280, 800, 60_000, false),
        ];
        assert_eq!(pick_mode(&modes, None), Some(1));
        assert_eq!(pick_mode(&[], None), None);
    }

    #[test]
    fn refresh_is_computed_in_millihertz_like_the_kernel() {
        // CEA 1080p60: 148.5 MHz, 2200 x 1125.
        assert_eq!(refresh_mhz(148_500, 2200, 1125, 0, false), 60_000);
        // 1080p59.94: 148.352 MHz.
        assert_eq!(refresh_mhz(148_352, 2200, 1125, 0, false), 59_940);
        // 1080i: half the lines per field.
        assert_eq!(refresh_mhz(74_250, 2200, 1125, 0, true), 60_000);
        assert_eq!(refresh_mhz(148_500, 0, 1125, 0, false), 0);
    }

    #[test]
    fn connectors_keep_their_crtc_and_the_rest_take_free_ones() {
        let requests = [
            CrtcRequest {
                connector: 40,
                current: None,
                possible: vec![0, 1, 2],
            },
            CrtcRequest {
                connector: 41,
                current: Some(0),
                possible: vec![0, 1],
            },
            CrtcRequest {
                connector: 42,
                current: None,
                possible: vec![0, 1],
            },
        ];
        assert_eq!(
            assign_crtcs(&requests, &[]),
            vec![(41, 0), (40, 1)],
            "42 can only use 0 and 1, which are taken"
        );
        assert_eq!(assign_crtcs(&requests, &[1]), vec![(41, 0), (40, 2)]);
    }

    #[test]
    fn a_stale_current_crtc_the_encoder_cannot_drive_is_not_kept() {
        let requests = [CrtcRequest {
            connector: 7,
            current: Some(3),
            possible: vec![1],
        }];
        assert_eq!(assign_crtcs(&requests, &[]), vec![(7, 1)]);
    }

    #[test]
    fn names_and_masks() {
        assert_eq!(output_name("HDMI-A", 2), "HDMI-A-2");
        assert_eq!(crtcs_in_mask(0b101, 3), vec![0, 2]);
        assert_eq!(crtcs_in_mask(0b1000, 3), Vec::<usize>::new());
    }
}
