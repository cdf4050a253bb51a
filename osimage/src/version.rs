//! Version comparison exactly as systemd's `strverscmp_improved()` (systemd ≥ 250),
//! which systemd-boot, bootctl, sysupdate and the Boot Loader Specification use to
//! decide which entry or image is newest.
//!
//! The string is split into numeric and alphabetic segments; the separators change
//! the order: `~` (pre-release) sorts before everything, even the end of the string;
//! `-` (version/release separator) sorts before `^` (patch) and `.` (point release);
//! and a segment with no separator at all sorts last. Characters outside
//! `[A-Za-z0-9~^.-]` only separate segments.

use std::cmp::Ordering;

fn is_valid(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'~' | b'-' | b'^' | b'.')
}

/// Compares two version strings the way systemd does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let at = |s: &[u8]| s.first().copied().unwrap_or(0);
    loop {
        while !a.is_empty() && !is_valid(a[0]) {
            a = &a[1..];
        }
        while !b.is_empty() && !is_valid(b[0]) {
            b = &b[1..];
        }

        // '~' first: a pre-release is older even than the end of the other string.
        if at(a) == b'~' || at(b) == b'~' {
            let r = (at(a) != b'~').cmp(&(at(b) != b'~'));
            if r != Ordering::Equal {
                return r;
            }
            a = &a[1..];
            b = &b[1..];
        }

        if a.is_empty() || b.is_empty() {
            return at(a).cmp(&at(b));
        }

        for sep in [b'-', b'^', b'.'] {
            if at(a) == sep || at(b) == sep {
                let r = (at(a) != sep).cmp(&(at(b) != sep));
                if r != Ordering::Equal {
                    return r;
                }
                a = &a[1..];
                b = &b[1..];
            }
        }

        let (seg_a, seg_b);
        if at(a).is_ascii_digit() || at(b).is_ascii_digit() {
            let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
            let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
            // A numeric segment is newer than an alphabetic (or empty) one.
            let r = (na != 0).cmp(&(nb != 0));
            if r != Ordering::Equal {
                return r;
            }
            let (da, db) = (&a[..na], &b[..nb]);
            let da = &da[da.iter().take_while(|&&c| c == b'0').count()..];
            let db = &db[db.iter().take_while(|&&c| c == b'0').count()..];
            let r = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
            if r != Ordering::Equal {
                return r;
            }
            (seg_a, seg_b) = (na, nb);
        } else {
            let na = a.iter().take_while(|c| c.is_ascii_alphabetic()).count();
            let nb = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
            let n = na.min(nb);
            let r = a[..n].cmp(&b[..n]).then_with(|| na.cmp(&nb));
            if r != Ordering::Equal {
                return r;
            }
            (seg_a, seg_b) = (na, nb);
        }
        a = &a[seg_a..];
        b = &b[seg_b..];
    }
}

/// Sorts newest first.
pub fn sort_newest_first<S: AsRef<str>>(versions: &mut [S]) {
    versions.sort_by(|x, y| compare(y.as_ref(), x.as_ref()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    /// Each pair must compare as given, and the reverse pair as its reverse.
    fn check(a: &str, b: &str, want: Ordering) {
        assert_eq!(compare(a, b), want, "{a:?} vs {b:?}");
        assert_eq!(compare(b, a), want.reverse(), "{b:?} vs {a:?}");
    }

    /// The ordered list from the Boot Loader Specification's and systemd's
    /// test-string-util `strverscmp_improved` tests: every element is newer than the
    /// ones before it.
    #[test]
    fn systemd_reference_sequence_is_strictly_increasing() {
        let seq = [
            "~1",
            "",
            "ab",
            "abb",
            "abc",
            "0001",
            "002",
            "12",
            "122",
            "122.9",
            "123~rc1",
            "123",
            "123-a",
            "123-a.1",
            "123-a1",
            "123-a1.1",
            "123-3",
            "123-3.1",
            "123^patch1",
            "123^1",
            "123.a-1",
            "123.1-1",
            "123a-1",
            "124",
            "124.1",
        ];
        for (i, a) in seq.iter().enumerate() {
            for b in &seq[i + 1..] {
                check(a, b, Less);
            }
            check(a, a, Equal);
        }
    }

    #[test]
    fn spec_examples() {
        check("251", "251.1", Less);
        check("251~rc1", "251", Less);
        check(
            "5.11.0-0.rc5.20210128git76c057c84d28.137.fc34",
            "5.11.0-1",
            Less,
        );
        check("247.2-3.1.fc33.x86_64", "247.2-3.1.fc33.x86_64", Equal);
        check("123_a", "123a", Equal);
        check("00123", "123", Equal);
        check("1.2.3", "1.2.10", Less);
        check("2.0", "1.99", Greater);
        check("123a", "123.a", Greater);
        check("123.45-67.88", "123.45-67.89", Less);
        check("123.45-67.89", "123.45-67.89a", Less);
        check("123.45-67.ab", "123.45-67.89", Less);
        check("123.45-67.9", "123.45-67.89", Less);
        check("123.45-67", "123.45-67.89", Less);
        check("123.45-9.99", "123.45-67.89", Less);
        check("123-99.99", "123.45-67.89", Less);
    }

    #[test]
    fn sorting_puts_newest_first() {
        let mut v = vec!["1.0", "1.10", "1.2", "1.2~rc1", "0.9"];
        sort_newest_first(&mut v);
        assert_eq!(v, ["1.10", "1.2", "1.2~rc1", "1.0", "0.9"]);
    }
}
