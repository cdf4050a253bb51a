//! `/proc/self/mountinfo`: which block devices are mounted where. Pure parsing; the
//! callers read the file.

/// `(major:minor, mount point)` of every mount, in mount order, with the mount
/// point's octal escapes (`\040` for a space) undone.
pub fn entries(mountinfo: &str) -> Vec<(String, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (_, _, dev, _, mount) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            Some((dev.to_owned(), unescape(mount)))
        })
        .collect()
}

/// The mount points of device `devno` (`major:minor`), the last mounted first (so
/// stacked mounts come off in order).
pub fn mount_points(mountinfo: &str, devno: &str) -> Vec<String> {
    let mut found: Vec<String> = entries(mountinfo)
        .into_iter()
        .filter(|(dev, _)| dev == devno)
        .map(|(_, mount)| mount)
        .collect();
    found.reverse();
    found
}

fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 253:1 / / ro,relatime shared:1 - erofs /dev/mapper/usr ro
61 22 0:52 / /efi rw,relatime shared:30 - autofs systemd-1 rw,fd=50
88 61 252:1 / /efi rw,nosuid,nodev shared:45 - vfat /dev/vda1 rw,fmask=0077
90 22 252:1 / /mnt/my\\040esp rw shared:46 - vfat /dev/vda1 rw
";

    #[test]
    fn finds_every_mount_of_a_device_last_first() {
        assert_eq!(mount_points(INFO, "252:1"), ["/mnt/my esp", "/efi"]);
        // The autofs trigger is not the device: it stays, and mounts it again later.
        assert!(mount_points(INFO, "252:2").is_empty());
    }

    #[test]
    fn every_entry_in_order() {
        let all = entries(INFO);
        assert_eq!(all.len(), 4);
        assert_eq!(all[0], ("253:1".to_owned(), "/".to_owned()));
        assert_eq!(all[1], ("0:52".to_owned(), "/efi".to_owned()));
    }
}
