//! Which versions a source offers, and what an update would do: pure functions over
//! file names, slot labels and versions.

use std::cmp::Ordering;

use serde::Serialize;

use crate::version;

/// The four files of one version, by suffix.
pub const PARTS: [&str; 4] = ["usr", "usr-verity", "usr-verity-sig", "efi"];

/// The file name of one part of `<name>_<version>`. The usr file carries its file
/// system type: `.usr.erofs` or `.usr.squashfs`.
pub fn file_name(name: &str, version: &str, part: &str, usr_format: &str) -> String {
    match part {
        "usr" => format!("{name}_{version}.usr.{usr_format}"),
        "efi" => format!("{name}_{version}.efi"),
        other => format!("{name}_{version}.{other}"),
    }
}

/// One version on the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Offered {
    pub version: String,
    /// part → file name
    pub files: Vec<(String, String)>,
    /// Parts with no file on the source; a version is offered only when empty.
    pub missing: Vec<String>,
}

impl Offered {
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
    }

    pub fn file(&self, part: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(p, _)| p == part)
            .map(|(_, f)| f.as_str())
    }
}

/// Groups the manifest's file names for OS `name` by version, newest first.
pub fn offered<'a>(name: &str, files: impl IntoIterator<Item = &'a str>) -> Vec<Offered> {
    let prefix = format!("{name}_");
    let mut by_version: Vec<Offered> = Vec::new();
    for f in files {
        let Some(rest) = f.strip_prefix(&prefix) else {
            continue;
        };
        let (version, part) = if let Some(v) = rest.strip_suffix(".efi") {
            (v, "efi")
        } else if let Some((v, fmt)) = rest.rsplit_once(".usr.") {
            if fmt != "erofs" && fmt != "squashfs" {
                continue;
            }
            (v, "usr")
        } else if let Some(v) = rest.strip_suffix(".usr-verity-sig") {
            (v, "usr-verity-sig")
        } else if let Some(v) = rest.strip_suffix(".usr-verity") {
            (v, "usr-verity")
        } else {
            continue;
        };
        if version.is_empty() || version.contains(['/', '_']) {
            continue;
        }
        match by_version.iter_mut().find(|o| o.version == version) {
            Some(o) => o.files.push((part.to_owned(), f.to_owned())),
            None => by_version.push(Offered {
                version: version.to_owned(),
                files: vec![(part.to_owned(), f.to_owned())],
                missing: Vec::new(),
            }),
        }
    }
    for o in &mut by_version {
        o.missing = PARTS
            .iter()
            .filter(|p| o.file(p).is_none())
            .map(|p| (*p).to_owned())
            .collect();
        o.files.sort();
    }
    by_version.sort_by(|a, b| version::compare(&b.version, &a.version));
    by_version
}

/// A usr slot on the disk: three partitions with the same label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    /// Index of the slot's usr partition in the GPT; identifies the slot.
    pub usr_index: usize,
    pub verity_index: usize,
    pub sig_index: usize,
    /// `None` for `_empty`.
    pub version: Option<String>,
    pub usr_size: u64,
    pub verity_size: u64,
    pub sig_size: u64,
}

/// What `update` decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Decision {
    /// Install `version` into the slot whose usr partition is `slot`.
    Install {
        version: String,
        slot: usize,
        replaces: Option<String>,
    },
    UpToDate {
        newest: String,
    },
    Refused {
        reason: String,
    },
}

/// Rules for choosing.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub min_version: Option<String>,
    pub allow_downgrade: bool,
}

/// Picks the newest complete version and a slot for it: an `_empty` slot, else the
/// oldest slot that is not the booted one. Never the booted slot. `activated` lists
/// the versions that have a UKI; a slot labelled with the candidate but without its
/// UKI (an interrupted update) is finished in place.
pub fn decide(
    offers: &[Offered],
    slots: &[Slot],
    activated: &[&str],
    booted: Option<&str>,
    policy: &Policy,
) -> Decision {
    let newest_installed = slots
        .iter()
        .filter_map(|s| s.version.as_deref())
        .max_by(|a, b| version::compare(a, b));
    let current = booted.or(newest_installed);
    let candidate = offers.iter().find(|o| {
        o.complete()
            && policy
                .min_version
                .as_deref()
                .is_none_or(|m| version::compare(&o.version, m) != Ordering::Less)
    });
    let Some(candidate) = candidate else {
        return Decision::Refused {
            reason: "the source offers no complete version at or above MinVersion".into(),
        };
    };
    if let Some(s) = slots
        .iter()
        .find(|s| s.version.as_deref() == Some(candidate.version.as_str()))
    {
        if activated.contains(&candidate.version.as_str())
            || booted == Some(candidate.version.as_str())
        {
            return Decision::UpToDate {
                newest: candidate.version.clone(),
            };
        }
        return Decision::Install {
            version: candidate.version.clone(),
            slot: s.usr_index,
            replaces: None,
        };
    }
    if let Some(cur) = current
        && version::compare(&candidate.version, cur) == Ordering::Less
        && !policy.allow_downgrade
    {
        return Decision::Refused {
            reason: format!(
                "{} is older than the running {cur}; use --allow-downgrade",
                candidate.version
            ),
        };
    }
    let not_booted: Vec<&Slot> = slots
        .iter()
        .filter(|s| booted.is_none_or(|b| s.version.as_deref() != Some(b)))
        .collect();
    let target = not_booted.iter().find(|s| s.version.is_none()).or_else(|| {
        not_booted
            .iter()
            .filter(|s| s.version.is_some())
            .min_by(|a, b| {
                version::compare(
                    a.version.as_deref().unwrap_or(""),
                    b.version.as_deref().unwrap_or(""),
                )
            })
    });
    match target {
        Some(s) => Decision::Install {
            version: candidate.version.clone(),
            slot: s.usr_index,
            replaces: s.version.clone(),
        },
        None => Decision::Refused {
            reason: "no slot to install into: every slot holds the booted version".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(i: usize, v: Option<&str>) -> Slot {
        Slot {
            usr_index: i,
            verity_index: i + 1,
            sig_index: i + 2,
            version: v.map(str::to_owned),
            usr_size: 1 << 20,
            verity_size: 1 << 16,
            sig_size: 4096,
        }
    }

    fn files(versions: &[&str]) -> Vec<String> {
        versions
            .iter()
            .flat_map(|v| PARTS.map(|p| file_name("tessera", v, p, "erofs")))
            .collect()
    }

    #[test]
    fn only_complete_sets_are_offered_newest_first() {
        let mut f = files(&["1", "2", "10"]);
        f.push("tessera_11.efi".into());
        f.push("other_12.efi".into());
        let offers = offered("tessera", f.iter().map(String::as_str));
        let versions: Vec<&str> = offers.iter().map(|o| o.version.as_str()).collect();
        assert_eq!(versions, ["11", "10", "2", "1"]);
        assert!(!offers[0].complete());
        assert_eq!(offers[0].missing, ["usr", "usr-verity", "usr-verity-sig"]);
        assert!(offers[1].complete());
    }

    #[test]
    fn empty_slot_first_never_the_booted_one() {
        let offers = offered("tessera", files(&["3"]).iter().map(String::as_str));
        let slots = [slot(1, Some("2")), slot(4, None)];
        assert_eq!(
            decide(&offers, &slots, &["2"], Some("2"), &Policy::default()),
            Decision::Install {
                version: "3".into(),
                slot: 4,
                replaces: None
            }
        );
        // No empty slot: the oldest not booted.
        let slots = [slot(1, Some("2")), slot(4, Some("1"))];
        assert_eq!(
            decide(&offers, &slots, &["2"], Some("2"), &Policy::default()),
            Decision::Install {
                version: "3".into(),
                slot: 4,
                replaces: Some("1".into())
            }
        );
        // Booted from the older slot: the newer, not booted one is replaced.
        assert_eq!(
            decide(&offers, &slots, &["1", "2"], Some("1"), &Policy::default()),
            Decision::Install {
                version: "3".into(),
                slot: 1,
                replaces: Some("2".into())
            }
        );
        // A single slot that is booted is never overwritten.
        assert!(matches!(
            decide(
                &offers,
                &[slot(1, Some("2"))],
                &["2"],
                Some("2"),
                &Policy::default()
            ),
            Decision::Refused { .. }
        ));
    }

    #[test]
    fn min_version_downgrade_and_up_to_date() {
        let offers = offered("tessera", files(&["1", "2"]).iter().map(String::as_str));
        let slots = [slot(1, Some("3")), slot(4, None)];
        assert!(matches!(
            decide(&offers, &slots, &["3"], Some("3"), &Policy::default()),
            Decision::Refused { .. }
        ));
        let allow = Policy {
            allow_downgrade: true,
            ..Policy::default()
        };
        assert!(matches!(
            decide(&offers, &slots, &["3"], Some("3"), &allow),
            Decision::Install { .. }
        ));
        let min = Policy {
            min_version: Some("5".into()),
            ..Policy::default()
        };
        assert!(matches!(
            decide(&offers, &slots, &["3"], Some("3"), &min),
            Decision::Refused { .. }
        ));
        let slots = [slot(1, Some("2")), slot(4, None)];
        assert_eq!(
            decide(&offers, &slots, &["2"], Some("2"), &Policy::default()),
            Decision::UpToDate { newest: "2".into() }
        );
        // Labelled but never activated (cut off before its UKI): finished in place.
        let slots = [slot(1, Some("1")), slot(4, Some("2"))];
        assert_eq!(
            decide(&offers, &slots, &["1"], Some("1"), &Policy::default()),
            Decision::Install {
                version: "2".into(),
                slot: 4,
                replaces: None
            }
        );
    }
}
