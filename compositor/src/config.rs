//! The compositor's view of `compositor.toml`: loading, and the conversions into
//! smithay and policy types.

use std::path::{Path, PathBuf};

use smithay::input::keyboard::XkbConfig;
use smithay::utils::Transform as SmithayTransform;
use tessera_config::compositor::{CompositorConfig, Grantable, KeyboardConfig, Transform};
use tessera_protocols::SandboxRule;

/// `--config FILE`, else the first of `$XDG_CONFIG_HOME/tessera/compositor.toml`,
/// `$XDG_CONFIG_DIRS/tessera/compositor.toml` (default `/etc/xdg`) and the
/// vendor file `/usr/share/tessera/compositor.toml` that exists, else the shipped
/// defaults. An image-based OS ships its session config in /usr, and an admin
/// or user overrides it the usual way.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<(CompositorConfig, Option<PathBuf>)> {
    let path = explicit.map(Path::to_path_buf).or_else(|| {
        search_path(
            |k| std::env::var_os(k).map(PathBuf::from),
            |p: &Path| p.exists(),
        )
    });
    match path {
        Some(p) => {
            let config = check(&p)?;
            Ok((config, Some(p)))
        }
        None => Ok((
            tessera_config::parse(
                tessera_config::compositor::DEFAULT_TOML,
                Path::new("<defaults>"),
            )?,
            None,
        )),
    }
}

/// The config files looked at, in order, given the environment.
pub fn candidates(env: impl Fn(&str) -> Option<PathBuf>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let home = env("XDG_CONFIG_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|h| h.join(".config")));
    if let Some(home) = home {
        out.push(home.join("tessera/compositor.toml"));
    }
    let dirs = env("XDG_CONFIG_DIRS").unwrap_or_else(|| PathBuf::from("/etc/xdg"));
    for dir in std::env::split_paths(&dirs).filter(|p| p.is_absolute()) {
        out.push(dir.join("tessera/compositor.toml"));
    }
    out.push(PathBuf::from("/usr/share/tessera/compositor.toml"));
    out
}

fn search_path(
    env: impl Fn(&str) -> Option<PathBuf>,
    exists: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    candidates(env).into_iter().find(|p| exists(p))
}

/// Parses and validates a file: the schema, then what only the compositor can
/// check (key names against xkb).
pub fn check(path: &Path) -> anyhow::Result<CompositorConfig> {
    let config: CompositorConfig = tessera_config::load(path)?;
    crate::input::Bindings::new(&config.binds)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(config)
}

pub fn sandbox_rules(config: &CompositorConfig) -> Vec<SandboxRule> {
    let classes = |v: &[Grantable]| v.iter().map(|g| g.0).collect();
    config
        .security
        .rule
        .iter()
        .map(|r| SandboxRule {
            engine: r.engine.clone(),
            app_id: r.app_id.clone(),
            allow: classes(&r.allow),
            deny: classes(&r.deny),
        })
        .collect()
}

/// The `[scanout]` switches as the plane policy takes them.
pub fn switches(config: &CompositorConfig) -> crate::render::planes::Switches {
    let s = &config.scanout;
    crate::render::planes::Switches {
        direct: s.direct,
        overlay_planes: s.overlay_planes,
        cursor_plane: s.cursor_plane,
    }
}

pub fn transform(t: Transform) -> SmithayTransform {
    match t {
        Transform::Normal => SmithayTransform::Normal,
        Transform::Rotate90 => SmithayTransform::_90,
        Transform::Rotate180 => SmithayTransform::_180,
        Transform::Rotate270 => SmithayTransform::_270,
        Transform::Flipped => SmithayTransform::Flipped,
        Transform::Flipped90 => SmithayTransform::Flipped90,
        Transform::Flipped180 => SmithayTransform::Flipped180,
        Transform::Flipped270 => SmithayTransform::Flipped270,
    }
}

/// The xkb names of a `[input.keyboard]` table.
pub fn xkb(kb: &KeyboardConfig) -> XkbConfig<'_> {
    XkbConfig {
        rules: &kb.rules,
        model: &kb.model,
        layout: &kb.layout,
        variant: &kb.variant,
        options: (!kb.options.is_empty()).then(|| kb.options.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<PathBuf> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| PathBuf::from(v))
        }
    }

    #[test]
    fn user_then_system_then_vendor_config() {
        let got = candidates(env(&[
            ("HOME", "/home/a"),
            ("XDG_CONFIG_DIRS", "/opt/xdg:rel:/etc/xdg"),
        ]));
        let want: Vec<PathBuf> = [
            "/home/a/.config/tessera/compositor.toml",
            "/opt/xdg/tessera/compositor.toml",
            "/etc/xdg/tessera/compositor.toml",
            "/usr/share/tessera/compositor.toml",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(
            got, want,
            "relative entries are ignored, as the XDG spec says"
        );
        let got = candidates(env(&[("XDG_CONFIG_HOME", "/x")]));
        assert_eq!(got[0], PathBuf::from("/x/tessera/compositor.toml"));
        assert_eq!(got[1], PathBuf::from("/etc/xdg/tessera/compositor.toml"));
    }

    #[test]
    fn the_first_existing_file_wins() {
        let vars = [("HOME", "/home/a")];
        let vendor = Path::new("/usr/share/tessera/compositor.toml");
        assert_eq!(
            search_path(env(&vars), |p| p == vendor),
            Some(vendor.to_path_buf())
        );
        assert_eq!(
            search_path(env(&vars), |p| p.starts_with("/etc") || p == vendor),
            Some(PathBuf::from("/etc/xdg/tessera/compositor.toml"))
        );
        assert_eq!(search_path(env(&vars), |_| false), None);
    }
}
