//! Type #2 boot entries (UKIs in `EFI/Linux/`) with boot counting, and the order
//! systemd-boot picks them in.
//!
//! File names are `<id>[+LEFT[-DONE]].efi`. systemd-boot decrements LEFT and
//! increments DONE before each try; a boot that reaches boot-complete.target is
//! blessed by dropping the counter. LEFT = 0 marks the entry bad: it sorts last.

use std::cmp::Ordering;
use std::fmt;

use serde::Serialize;

use crate::version;

/// One UKI on the ESP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootEntry {
    /// The file name on the ESP.
    pub file_name: String,
    /// The name without counter and `.efi`: `<name>_<version>`.
    pub id: String,
    pub tries_left: Option<u32>,
    pub tries_done: Option<u32>,
}

/// Splits a boot-counting name stem (`<id>+LEFT[-DONE]`, the Boot Loader
/// Specification's syntax for UKIs and Type #1 `.conf` entries alike) into id, tries
/// left and tries done.
pub fn split_counter(stem: &str) -> (&str, Option<u32>, Option<u32>) {
    match stem.rsplit_once('+') {
        Some((id, counter)) => {
            let (left, done) = match counter.split_once('-') {
                Some((l, d)) => (l, Some(d)),
                None => (counter, None),
            };
            match (left.parse::<u32>(), done.map(str::parse::<u32>)) {
                (Ok(l), None) => (id, Some(l), None),
                (Ok(l), Some(Ok(d))) => (id, Some(l), Some(d)),
                // Not a counter: the `+` belongs to the id.
                _ => (stem, None, None),
            }
        }
        None => (stem, None, None),
    }
}

impl BootEntry {
    /// Parses a file name; `None` for names that are not `*.efi`.
    pub fn parse(file_name: &str) -> Option<BootEntry> {
        let stem = file_name
            .strip_suffix(".efi")
            .or_else(|| file_name.strip_suffix(".EFI"))?;
        if stem.is_empty() || stem.starts_with('.') {
            return None;
        }
        let (id, tries_left, tries_done) = split_counter(stem);
        Some(BootEntry {
            file_name: file_name.to_owned(),
            id: id.to_owned(),
            tries_left,
            tries_done,
        })
    }

    /// `<id>+LEFT[-DONE].efi` or `<id>.efi`.
    pub fn format(id: &str, tries_left: Option<u32>, tries_done: Option<u32>) -> String {
        match (tries_left, tries_done) {
            (Some(l), Some(d)) if d > 0 => format!("{id}+{l}-{d}.efi"),
            (Some(l), _) => format!("{id}+{l}.efi"),
            (None, _) => format!("{id}.efi"),
        }
    }

    /// Bad: the counter ran out.
    pub fn is_bad(&self) -> bool {
        self.tries_left == Some(0)
    }

    /// Still being assessed.
    pub fn is_indeterminate(&self) -> bool {
        self.tries_left.is_some_and(|l| l > 0)
    }

    /// The version part of `<name>_<version>`.
    pub fn version(&self) -> &str {
        self.id.split_once('_').map_or("", |(_, v)| v)
    }

    /// The name part of `<name>_<version>`.
    pub fn name(&self) -> &str {
        self.id.split_once('_').map_or(self.id.as_str(), |(n, _)| n)
    }

    /// The file name after systemd-boot starts one more try.
    pub fn after_try(&self) -> Option<String> {
        let left = self.tries_left?;
        Some(BootEntry::format(
            &self.id,
            Some(left.saturating_sub(1)),
            Some(self.tries_done.unwrap_or(0) + 1),
        ))
    }

    /// The file name once blessed.
    pub fn blessed(&self) -> String {
        BootEntry::format(&self.id, None, None)
    }

    /// The file name once marked bad.
    pub fn marked_bad(&self) -> String {
        BootEntry::format(&self.id, Some(0), self.tries_done)
    }
}

impl fmt::Display for BootEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name)
    }
}

/// systemd-boot's order (boot_entry_compare): bad entries last; then newest id
/// first by version comparison; then more tries left first; then fewer tries done.
pub fn compare(a: &BootEntry, b: &BootEntry) -> Ordering {
    a.is_bad()
        .cmp(&b.is_bad())
        .then_with(|| version::compare(&b.id, &a.id))
        .then_with(|| {
            b.tries_left
                .unwrap_or(u32::MAX)
                .cmp(&a.tries_left.unwrap_or(u32::MAX))
        })
        .then_with(|| a.tries_done.unwrap_or(0).cmp(&b.tries_done.unwrap_or(0)))
}

/// What systemd-boot will start, given the entries and the default and one-shot
/// choices (entry ids or glob patterns as in loader.conf `default`, or EFI
/// variables). Returns the index into `entries`.
pub fn select(
    entries: &[BootEntry],
    default: Option<&str>,
    oneshot: Option<&str>,
) -> Option<usize> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&x, &y| compare(&entries[x], &entries[y]));
    let matches = |pattern: &str, e: &BootEntry| {
        glob_match(pattern, &e.id) || glob_match(pattern, &e.file_name)
    };
    // The one-shot choice wins even over a bad entry's place: the user asked for it.
    if let Some(p) = oneshot
        && let Some(&i) = order.iter().find(|&&i| matches(p, &entries[i]))
    {
        return Some(i);
    }
    // A default pattern picks the first matching entry in order, except a bad one
    // when a good one exists (bad entries are only tried when nothing else is left).
    if let Some(p) = default
        && let Some(&i) = order
            .iter()
            .find(|&&i| matches(p, &entries[i]) && !entries[i].is_bad())
    {
        return Some(i);
    }
    order.first().copied()
}

/// Sorted copy, systemd-boot's menu order.
pub fn sorted(entries: &[BootEntry]) -> Vec<BootEntry> {
    let mut v = entries.to_vec();
    v.sort_by(compare);
    v
}

/// `*` and `?` globbing, as loader.conf's `default`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str) -> BootEntry {
        BootEntry::parse(name).unwrap()
    }

    #[test]
    fn counters_parse_like_the_bls_spec() {
        let x = e("tessera_2.0+3.efi");
        assert_eq!(
            (x.id.as_str(), x.tries_left, x.tries_done),
            ("tessera_2.0", Some(3), None)
        );
        let x = e("tessera_2.0+1-2.efi");
        assert_eq!((x.tries_left, x.tries_done), (Some(1), Some(2)));
        assert_eq!(x.version(), "2.0");
        assert_eq!(x.name(), "tessera");
        let x = e("tessera_2.0.efi");
        assert_eq!((x.tries_left, x.tries_done), (None, None));
        // A `+` that is not a counter stays part of the id.
        assert_eq!(e("foo+bar.efi").id, "foo+bar");
        assert!(BootEntry::parse("x.conf").is_none());
        assert!(BootEntry::parse(".tessera_2.efi").is_none());
    }

    #[test]
    fn counting_renames_like_systemd_boot() {
        // The BLS example: +3 → +2-1 → +1-2 → +0-3 (bad).
        let mut name = "tessera_2+3.efi".to_owned();
        let mut seen = vec![];
        while let Some(next) = e(&name).after_try() {
            if e(&name).is_bad() {
                break;
            }
            name = next;
            seen.push(name.clone());
        }
        assert_eq!(
            seen,
            [
                "tessera_2+2-1.efi",
                "tessera_2+1-2.efi",
                "tessera_2+0-3.efi"
            ]
        );
        assert!(e("tessera_2+0-3.efi").is_bad());
        assert_eq!(e("tessera_2+1-2.efi").blessed(), "tessera_2.efi");
    }

    #[test]
    fn newest_good_entry_wins_and_bad_ones_sort_last() {
        let entries = vec![
            e("tessera_1.efi"),
            e("tessera_3+0-3.efi"),
            e("tessera_2+2-1.efi"),
        ];
        let order: Vec<String> = sorted(&entries).into_iter().map(|x| x.file_name).collect();
        assert_eq!(
            order,
            ["tessera_2+2-1.efi", "tessera_1.efi", "tessera_3+0-3.efi"]
        );
        assert_eq!(select(&entries, None, None), Some(2));
        // Only bad entries left: systemd-boot still tries one.
        let only_bad = vec![e("tessera_3+0-3.efi")];
        assert_eq!(select(&only_bad, None, None), Some(0));
    }

    #[test]
    fn versions_compare_as_systemd_does() {
        let entries = vec![
            e("tessera_1.9.efi"),
            e("tessera_1.10.efi"),
            e("tessera_1.10~rc1.efi"),
        ];
        assert_eq!(
            entries[select(&entries, None, None).unwrap()].id,
            "tessera_1.10"
        );
    }

    #[test]
    fn default_and_oneshot() {
        let entries = vec![e("tessera_1.efi"), e("tessera_2.efi"), e("other_9+0.efi")];
        assert_eq!(select(&entries, Some("tessera_1*"), None), Some(0));
        assert_eq!(
            select(&entries, Some("tessera_1*"), Some("tessera_2.efi")),
            Some(1)
        );
        // A default that matches only a bad entry is passed over.
        assert_eq!(select(&entries, Some("other_*"), None), Some(1));
        assert!(glob_match("tessera_*", "tessera_2"));
        assert!(!glob_match("tessera_?", "tessera_10"));
    }
}
