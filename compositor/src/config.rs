//! The compositor's view of `compositor.toml`: loading, and the conversions into
//! smithay and policy types.

use std::path::{Path, PathBuf};

use smithay::input::keyboard::XkbConfig;
use smithay::utils::Transform as SmithayTransform;
use tessera_config::compositor::{CompositorConfig, Grantable, KeyboardConfig, Transform};
use tessera_protocols::SandboxRule;

/// `--config FILE`, else `$XDG_CONFIG_HOME/tessera/compositor.toml` when it exists,
/// else the shipped defaults.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<(CompositorConfig, Option<PathBuf>)> {
    let path = explicit.map(Path::to_path_buf).or_else(|| {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        let p = base.join("tessera/compositor.toml");
        p.exists().then_some(p)
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
