//! The `%` specifiers systemd-repart expands in `Label=`, as they apply to an image
//! built elsewhere than where it runs: the image's identity and its os-release
//! stand in for the running system's, and specifiers that name the build host
//! (its hostname, machine ID, boot ID, kernel) are refused, since a label that
//! depended on them would make the build irreproducible.

/// What the specifiers of a built image stand for.
#[derive(Debug, Clone, Default)]
pub struct SpecifierValues {
    /// `%M`: `image.name` (repart reads `IMAGE_ID=`, which mkosi sets from it).
    pub image_id: String,
    /// `%A`: `image.version` (`IMAGE_VERSION=`).
    pub image_version: String,
    /// The image's os-release, for `%o %w %B %W`.
    pub os_release: Vec<(String, String)>,
}

impl SpecifierValues {
    /// Reads `KEY=value` lines as os-release(5) writes them (values optionally
    /// quoted); comments and malformed lines are skipped, as systemd does.
    pub fn with_os_release(mut self, text: &str) -> SpecifierValues {
        self.os_release = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                let v = v.trim();
                let unquoted = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .unwrap_or(v);
                (k.trim().to_owned(), unquoted.to_owned())
            })
            .collect();
        self
    }

    fn os_release(&self, key: &str) -> &str {
        self.os_release
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The architecture as systemd names it (`%a`).
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// `value` with its specifiers expanded. A field os-release lacks expands to
/// nothing, as in systemd.
pub fn expand(value: &str, v: &SpecifierValues) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            return Err(format!(
                "`{value}` ends in a lone `%` (write `%%` for a percent sign)"
            ));
        };
        match spec {
            '%' => out.push('%'),
            'a' => out.push_str(architecture()),
            'A' => out.push_str(&v.image_version),
            'M' => out.push_str(&v.image_id),
            'o' => out.push_str(v.os_release("ID")),
            'w' => out.push_str(v.os_release("VERSION_ID")),
            'B' => out.push_str(v.os_release("BUILD_ID")),
            'W' => out.push_str(v.os_release("VARIANT_ID")),
            'b' | 'H' | 'l' | 'm' | 'q' | 'T' | 'V' | 'v' | 'u' | 'U' | 'g' | 'G' => {
                return Err(format!(
                    "`%{spec}` names something of the machine that builds the image; \
                     a label must not depend on it (the build would not be reproducible)"
                ));
            }
            other => {
                return Err(format!(
                    "unknown specifier `%{other}` (known: %a %A %B %M %o %w %W %%)"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> SpecifierValues {
        SpecifierValues {
            image_id: "tessera".into(),
            image_version: "2.1".into(),
            ..Default::default()
        }
        .with_os_release("# comment\nID=tessera-os\nVERSION_ID=\"12\"\nVARIANT_ID='kiosk'\n")
    }

    #[test]
    fn image_and_os_release_specifiers_expand() {
        let v = values();
        assert_eq!(expand("%M_%A", &v).unwrap(), "tessera_2.1");
        assert_eq!(expand("%o-%w-%W", &v).unwrap(), "tessera-os-12-kiosk");
        assert_eq!(
            expand("usr-%a", &v).unwrap(),
            format!("usr-{}", architecture())
        );
        assert_eq!(expand("100%%", &v).unwrap(), "100%");
        // BUILD_ID is absent: nothing, as systemd does.
        assert_eq!(expand("b%B", &v).unwrap(), "b");
        assert_eq!(expand("plain", &v).unwrap(), "plain");
    }

    #[test]
    fn host_and_unknown_specifiers_and_a_lone_percent_are_refused() {
        let v = values();
        assert!(expand("%H", &v).unwrap_err().contains("reproducible"));
        assert!(expand("%m", &v).unwrap_err().contains("`%m`"));
        assert!(
            expand("%Z", &v)
                .unwrap_err()
                .contains("unknown specifier `%Z`")
        );
        assert!(expand("50%", &v).unwrap_err().contains("lone `%`"));
    }
}
