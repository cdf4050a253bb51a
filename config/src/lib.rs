//! Configuration loading shared by `tessera` and `osimage`.
//!
//! Every config in the project is TOML read through [`load`] or [`parse`], so a bad
//! value is always reported the same way: the file, the line and column, the dotted
//! key path, and what was wrong. The schemas themselves live next to the code that
//! consumes them; this crate owns the reporting so it cannot drift between tools.

use std::fmt;
pub mod compositor;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A config that could not be read or did not match its schema.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {message}")]
    Invalid { location: Location, message: String },
}

impl ConfigError {
    /// Where the error is, when it is about the file's contents.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Invalid { location, .. } => Some(location),
            ConfigError::Read { .. } => None,
        }
    }
}

/// File, 1-based line and column, and the dotted key path of a config error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path such as `output.DP-1.scale`; empty for a syntax error before any key.
    pub key: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        Ok(())
    }
}

/// Reads and parses a TOML file into `T`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses TOML text into `T`; `origin` names the file in errors.
pub fn parse<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        let (line, column) = inner
            .span()
            .map(|span| line_col(text, span.start))
            .unwrap_or((1, 1));
        ConfigError::Invalid {
            location: Location {
                file: origin.to_owned(),
                line,
                column,
                // serde_path_to_error writes "." for the document root.
                key: if key == "." { String::new() } else { key },
            },
            message: inner.message().trim().to_owned(),
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)]
        name: String,
        #[serde(default)]
        output: Vec<Output>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Output {
        #[allow(dead_code)]
        scale: f64,
    }

    fn err(text: &str) -> ConfigError {
        parse::<Sample>(text, Path::new("/etc/x.toml")).unwrap_err()
    }

    #[test]
    fn wrong_type_names_file_line_and_key() {
        let e = err("name = \"a\"\n\n[[output]]\nscale = \"big\"\n");
        let loc = e.location().unwrap();
        assert_eq!(loc.file, Path::new("/etc/x.toml"));
        assert_eq!(loc.line, 4);
        assert_eq!(loc.key, "output[0].scale");
        let shown = e.to_string();
        assert!(
            shown.starts_with("/etc/x.toml:4:9: key `output[0].scale`"),
            "{shown}"
        );
    }

    #[test]
    fn unknown_key_is_reported_with_its_line() {
        let e = err("name = \"a\"\ncolour = 3\n");
        let loc = e.location().unwrap();
        assert_eq!(loc.line, 2);
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = err("name = \"a\"\nscale = = 2\n");
        assert_eq!(e.location().unwrap().line, 2);
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = load::<Sample>(Path::new("/nonexistent/tessera.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/tessera.toml: cannot read")
        );
    }

    #[test]
    fn valid_config_parses() {
        let s: Sample = parse("name = \"a\"\n[[output]]\nscale = 1.5\n", Path::new("x")).unwrap();
        assert_eq!(s.output.len(), 1);
    }
}
