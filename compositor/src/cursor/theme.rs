//! xcursor themes as libXcursor finds them: `<dir>/<theme>/cursors/<name>` along
//! the search path, then the themes named by `Inherits=` in `index.theme`.

use std::path::{Path, PathBuf};

/// One image of a cursor, in DRM's ARGB8888 (little-endian, premultiplied), which
/// is how an xcursor file stores its pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorImage {
    /// The nominal size the image was drawn for.
    pub nominal: u32,
    pub width: u32,
    pub height: u32,
    pub hotspot: (u32, u32),
    /// How long this frame shows, for animated cursors.
    pub delay_ms: u32,
    pub pixels: Vec<u8>,
}

/// libXcursor's search path: `$XCURSOR_PATH` when set, else its defaults.
pub fn search_path(xcursor_path: Option<&str>, home: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = xcursor_path.filter(|p| !p.is_empty()) {
        return p
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| match (d.strip_prefix("~/"), home) {
                (Some(rest), Some(home)) => home.join(rest),
                _ => PathBuf::from(d),
            })
            .collect();
    }
    let mut dirs = Vec::new();
    if let Some(home) = home {
        dirs.push(home.join(".local/share/icons"));
        dirs.push(home.join(".icons"));
    }
    dirs.extend(["/usr/share/icons", "/usr/share/pixmaps"].map(PathBuf::from));
    dirs
}

/// The themes an `index.theme` inherits from, in order.
pub fn inherits(index_theme: &str) -> Vec<String> {
    let mut in_section = false;
    for line in index_theme.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[Icon Theme]";
        } else if in_section
            && let Some(v) = line.strip_prefix("Inherits")
            && let Some(v) = v.trim_start().strip_prefix('=')
        {
            return v
                .split([',', ';'])
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
        }
    }
    Vec::new()
}

/// The file of cursor `name` in `theme` or what it inherits.
pub fn find(search: &[PathBuf], theme: &str, name: &str) -> Option<PathBuf> {
    find_in(search, theme, name, &mut Vec::new())
}

fn find_in(search: &[PathBuf], theme: &str, name: &str, seen: &mut Vec<String>) -> Option<PathBuf> {
    // Themes that inherit from each other (or a very deep chain) end the walk.
    if seen.iter().any(|t| t == theme) || seen.len() >= 32 || theme.contains('/') {
        return None;
    }
    seen.push(theme.to_owned());
    let found = search
        .iter()
        .map(|dir| dir.join(theme).join("cursors").join(name))
        .find(|f| f.is_file());
    if found.is_some() {
        return found;
    }
    for dir in search {
        let Ok(text) = std::fs::read_to_string(dir.join(theme).join("index.theme")) else {
            continue;
        };
        for parent in inherits(&text) {
            if let Some(f) = find_in(search, &parent, name, seen) {
                return Some(f);
            }
        }
    }
    None
}

/// Parses an xcursor file; `None` when it is not one.
pub fn parse(bytes: &[u8]) -> Option<Vec<CursorImage>> {
    let images = xcursor::parser::parse_xcursor(bytes)?;
    Some(
        images
            .into_iter()
            .filter(|i| i.width > 0 && i.height > 0)
            .map(|i| CursorImage {
                nominal: i.size,
                width: i.width,
                height: i.height,
                hotspot: (i.xhot.min(i.width - 1), i.yhot.min(i.height - 1)),
                delay_ms: i.delay,
                // The parser's "rgba" is the file's byte order: ARGB8888 in DRM terms.
                pixels: i.pixels_rgba,
            })
            .collect(),
    )
}

/// The frames of the nominal size nearest `px` (an animated cursor has several
/// of each size); ties go to the larger, which scales down better.
pub fn nearest_frames(images: Vec<CursorImage>, px: u32) -> Vec<CursorImage> {
    let Some(best) = images
        .iter()
        .map(|i| i.nominal)
        .min_by_key(|&n| (n.abs_diff(px), std::cmp::Reverse(n)))
    else {
        return Vec::new();
    };
    images.into_iter().filter(|i| i.nominal == best).collect()
}

/// The arrow drawn when no theme has the cursor: black with a white edge, its
/// tip (the hotspot) at the top left, `px` tall in all.
pub fn builtin_arrow(px: u32) -> CursorImage {
    // The outline in a 24-unit design, clockwise from the tip.
    // The tip reaches past the first pixel, so that pixel is always drawn.
    const ARROW: [(f64, f64); 7] = [
        (-0.5, -1.0),
        (13.5, 13.0),
        (8.5, 13.0),
        (11.5, 20.0),
        (9.0, 21.0),
        (6.0, 14.5),
        (-0.5, 18.5),
    ];
    let f = f64::from(px.max(8)) / 24.0;
    let (width, height) = ((15.0 * f).ceil() as u32, (23.0 * f).ceil() as u32);
    let inside = |x: i64, y: i64| {
        if x < 0 || y < 0 || x >= i64::from(width) || y >= i64::from(height) {
            return false;
        }
        point_in_polygon((x as f64 + 0.5) / f, (y as f64 + 0.5) / f, &ARROW)
    };
    let mut pixels = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..i64::from(height) {
        for x in 0..i64::from(width) {
            let px = if !inside(x, y) {
                [0, 0, 0, 0]
            } else if [(1, 0), (-1, 0), (0, 1), (0, -1)]
                .iter()
                .all(|(dx, dy)| inside(x + dx, y + dy))
            {
                [0, 0, 0, 255]
            } else {
                [255, 255, 255, 255]
            };
            pixels.extend_from_slice(&px);
        }
    }
    CursorImage {
        nominal: px,
        width,
        height,
        hotspot: (0, 0),
        delay_ms: 0,
        pixels,
    }
}

fn point_in_polygon(x: f64, y: f64, poly: &[(f64, f64)]) -> bool {
    let mut inside = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let (xi, yi) = poly[i];
        let (xj, yj) = poly[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
/// An xcursor file as xcursorgen writes one: header, table of contents, and
/// one image chunk per entry.
pub fn xcursor_file(images: &[CursorImage]) -> Vec<u8> {
    let mut out = Vec::new();
    let le = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
    out.extend_from_slice(b"Xcur");
    le(&mut out, 16);
    le(&mut out, 0x1_0000);
    le(&mut out, images.len() as u32);
    let mut position = 16 + 12 * images.len() as u32;
    for i in images {
        le(&mut out, 0xfffd_0002);
        le(&mut out, i.nominal);
        le(&mut out, position);
        position += 36 + i.width * i.height * 4;
    }
    for i in images {
        for v in [36, 0xfffd_0002, i.nominal, 1, i.width, i.height] {
            le(&mut out, v);
        }
        for v in [i.hotspot.0, i.hotspot.1, i.delay_ms] {
            le(&mut out, v);
        }
        out.extend_from_slice(&i.pixels);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(nominal: u32, side: u32, argb: [u8; 4], delay_ms: u32) -> CursorImage {
        CursorImage {
            nominal,
            width: side,
            height: side,
            hotspot: (1, 2),
            delay_ms,
            pixels: argb.repeat((side * side) as usize),
        }
    }

    #[test]
    fn xcursor_files_parse_to_their_images_in_drm_byte_order() {
        let images = vec![
            solid(24, 4, [0, 0, 255, 255], 0),
            solid(48, 8, [255, 0, 0, 255], 0),
        ];
        assert_eq!(parse(&xcursor_file(&images)).unwrap(), images);
        assert_eq!(parse(b"not a cursor"), None);
    }

    #[test]
    fn the_nearest_nominal_size_wins_with_all_its_frames() {
        let images = vec![
            solid(24, 4, [1; 4], 30),
            solid(32, 4, [2; 4], 30),
            solid(32, 4, [3; 4], 40),
            solid(48, 4, [4; 4], 30),
        ];
        let at = |px| {
            nearest_frames(images.clone(), px)
                .iter()
                .map(|i| i.pixels[0])
                .collect::<Vec<_>>()
        };
        assert_eq!(at(24), [1]);
        assert_eq!(at(30), [2, 3]);
        assert_eq!(at(40), [4], "a tie goes to the larger");
        assert_eq!(at(96), [4]);
        assert!(nearest_frames(Vec::new(), 24).is_empty());
    }

    #[test]
    fn themes_are_found_through_inherits_and_loops_end() {
        let root = tempfile::tempdir().unwrap();
        let mk = |theme: &str, index: Option<&str>, cursors: &[&str]| {
            let dir = root.path().join(theme);
            std::fs::create_dir_all(dir.join("cursors")).unwrap();
            if let Some(index) = index {
                std::fs::write(dir.join("index.theme"), index).unwrap();
            }
            for c in cursors {
                std::fs::write(dir.join("cursors").join(c), b"x").unwrap();
            }
        };
        mk("base", None, &["default", "text"]);
        mk(
            "mid",
            Some("[Icon Theme]\nName=Mid\nInherits=missing,base\n"),
            &["text"],
        );
        mk("top", Some("[Icon Theme]\nInherits = mid\n"), &[]);
        mk("a", Some("[Icon Theme]\nInherits=b\n"), &[]);
        mk("b", Some("[Icon Theme]\nInherits=a\n"), &[]);
        let search = [PathBuf::from("/nonexistent"), root.path().to_path_buf()];
        let found = |theme, name| {
            find(&search, theme, name).map(|p| {
                p.strip_prefix(root.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
        };
        assert_eq!(found("top", "text").as_deref(), Some("mid/cursors/text"));
        assert_eq!(
            found("top", "default").as_deref(),
            Some("base/cursors/default")
        );
        assert_eq!(found("top", "wait"), None);
        assert_eq!(found("a", "default"), None, "a loop of inherits ends");
        assert_eq!(found("../base", "default"), None);
    }

    #[test]
    fn index_theme_inherits_only_counts_in_its_section() {
        assert_eq!(
            inherits("[Icon Theme]\nInherits=Adwaita;hicolor\n[X]\nInherits=no\n"),
            ["Adwaita", "hicolor"]
        );
        assert!(inherits("[Other]\nInherits=x\n").is_empty());
    }

    #[test]
    fn the_search_path_is_xcursor_path_or_libxcursors_defaults() {
        let home = Path::new("/home/u");
        assert_eq!(
            search_path(Some("~/c:/opt/c::"), Some(home)),
            [PathBuf::from("/home/u/c"), PathBuf::from("/opt/c")]
        );
        let defaults = search_path(None, Some(home));
        assert_eq!(defaults[0], PathBuf::from("/home/u/.local/share/icons"));
        assert!(defaults.contains(&PathBuf::from("/usr/share/icons")));
    }

    #[test]
    fn the_builtin_arrow_has_its_tip_at_the_hotspot_and_an_edge() {
        for px in [16, 24, 48] {
            let a = builtin_arrow(px);
            assert_eq!(a.pixels.len(), (a.width * a.height * 4) as usize);
            let at = |x: u32, y: u32| {
                let i = ((y * a.width + x) * 4) as usize;
                [
                    a.pixels[i],
                    a.pixels[i + 1],
                    a.pixels[i + 2],
                    a.pixels[i + 3],
                ]
            };
            let (hx, hy) = a.hotspot;
            assert_eq!(at(hx, hy)[3], 255, "{px}: the tip is drawn");
            assert_eq!(at(a.width - 1, 0), [0; 4], "{px}: top right is clear");
            let black = a.pixels.chunks(4).filter(|p| p == &[0, 0, 0, 255]).count();
            let white = a.pixels.chunks(4).filter(|p| p == &[255; 4]).count();
            assert!(black > 0 && white > 0, "{px}: {black} black, {white} white");
            if px >= 24 {
                assert!(black > white, "{px}: {black} black, {white} white");
            }
        }
    }
}
