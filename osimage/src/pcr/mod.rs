//! PCR 11 as systemd's EFI stub (252) measures a UKI, and the signed PCR policies
//! (`.pcrsig`) that let a TPM2-sealed secret survive updates through PolicyAuthorize.
//!
//! The stub extends PCR 11, for every section it knows in a fixed order, first with
//! the sha256 of the section name (NUL included), then with the sha256 of the section
//! contents. `.pcrsig` is not measured (it cannot contain its own signature), and
//! sections the 252 stub does not know (`.uname`, `.sbat`) are not measured either.
//! Later, systemd-pcrphase extends PCR 11 with the sha256 of each boot phase word.

pub mod sign;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The stub's measurement order.
pub const MEASURED_SECTIONS: [&str; 7] = [
    ".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey",
];

/// The phase paths systemd-measure signs for by default.
pub const DEFAULT_PHASES: [&str; 4] = [
    "enter-initrd",
    "enter-initrd:leave-initrd",
    "enter-initrd:leave-initrd:sysinit",
    "enter-initrd:leave-initrd:sysinit:ready",
];

pub const PCR: u32 = 11;

pub type PcrValue = [u8; 32];

/// `PCR := sha256(PCR ‖ digest)`.
pub fn extend(pcr: &mut PcrValue, digest: &[u8]) {
    let mut h = Sha256::new();
    h.update(*pcr);
    h.update(digest);
    *pcr = h.finalize().into();
}

/// PCR 11 after the stub measured `sections` (name, contents), before any phase.
pub fn measure_uki(sections: &[(&str, &[u8])]) -> PcrValue {
    let mut pcr = [0u8; 32];
    for name in MEASURED_SECTIONS {
        if let Some((_, data)) = sections.iter().find(|(n, _)| *n == name) {
            let mut cname = name.as_bytes().to_vec();
            cname.push(0);
            extend(&mut pcr, &Sha256::digest(&cname));
            extend(&mut pcr, &Sha256::digest(data));
        }
    }
    pcr
}

/// PCR 11 after the phases of `phase_path` (`enter-initrd:leave-initrd`, or empty).
pub fn after_phases(mut pcr: PcrValue, phase_path: &str) -> PcrValue {
    for word in phase_path.split(':').filter(|w| !w.is_empty()) {
        extend(&mut pcr, &Sha256::digest(word.as_bytes()));
    }
    pcr
}

/// The TPM2_PolicyPCR policy digest for PCR 11 (sha256 bank) holding `value`, from
/// an empty policy session.
pub fn policy_pcr_digest(value: &PcrValue) -> [u8; 32] {
    use crate::tpm2::policy::{PcrSelection, policy_pcr};
    policy_pcr(&[0; 32], &PcrSelection::sha256(&[PCR]), &[*value])
}

/// One entry of `.pcrsig`, as systemd-measure writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcrSignature {
    pub pcrs: Vec<u32>,
    /// sha256 of the signing public key (PKCS#1 DER), hex.
    pub pkfp: String,
    /// The policy digest, hex.
    pub pol: String,
    /// Base64 RSA PKCS#1 v1.5 signature over sha256(pol): what TPM2_PolicyAuthorize
    /// checks with an empty policyRef.
    pub sig: String,
}

/// The `.pcrsig` JSON: `{"sha256":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcrSig {
    pub sha256: Vec<PcrSignature>,
}

/// A predicted PCR 11 value for one phase path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prediction {
    pub phase: String,
    pub pcr: u32,
    pub hash: String,
}

/// Predictions for each phase path.
pub fn predict(sections: &[(&str, &[u8])], phases: &[&str]) -> Vec<Prediction> {
    let base = measure_uki(sections);
    phases
        .iter()
        .map(|phase| Prediction {
            phase: (*phase).to_owned(),
            pcr: PCR,
            hash: hex::encode(after_phases(base, phase)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_is_sha256_of_concatenation() {
        let mut pcr = [0u8; 32];
        extend(&mut pcr, &[1u8; 32]);
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update([1u8; 32]);
        assert_eq!(pcr, <[u8; 32]>::from(h.finalize()));
    }

    #[test]
    fn unmeasured_sections_do_not_change_the_value() {
        let a = measure_uki(&[(".linux", b"k"), (".osrel", b"o")]);
        let b = measure_uki(&[
            (".linux", b"k"),
            (".osrel", b"o"),
            (".pcrsig", b"x"),
            (".uname", b"6.1"),
        ]);
        assert_eq!(a, b);
        // Order of the input does not matter; the stub's order does.
        let c = measure_uki(&[(".osrel", b"o"), (".linux", b"k")]);
        assert_eq!(a, c);
    }

    #[test]
    fn phases_extend_in_order() {
        let base = [7u8; 32];
        let mut manual = base;
        extend(&mut manual, &Sha256::digest(b"enter-initrd"));
        extend(&mut manual, &Sha256::digest(b"leave-initrd"));
        assert_eq!(after_phases(base, "enter-initrd:leave-initrd"), manual);
        assert_eq!(after_phases(base, ""), base);
    }
}
