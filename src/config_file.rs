//! Reading TOML files (policies, scenarios) so that every problem is reported at once, each with the
//! file, the field path, the bad value and how to fix it.
//!
//! A file is parsed to a TOML table first (syntax errors carry line and column), then each top-level
//! section is deserialized on its own, so a typo in `[disk]` does not hide a bad value in `[retention]`.
//! Semantic checks then add their problems to the same list.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// One thing wrong with a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted field path, e.g. `disk.ceiling_percent` or `groups[1].min_rate`; empty for the whole file.
    pub path: String,
    /// The offending value as written, when there is one.
    pub value: Option<String>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Problem {
    /// A problem with a field and its value.
    pub fn field(
        path: impl Into<String>,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            path: path.into(),
            value: Some(value.to_string()),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path[..], &self.value) {
            ("", _) => write!(f, "{}", self.message),
            (path, Some(v)) => write!(f, "{path} = {v}: {}", self.message),
            (path, None) => write!(f, "{path}: {}", self.message),
        }
    }
}

/// A file that could not be loaded, with every problem found in it.
#[derive(Debug, thiserror::Error)]
pub struct FileError {
    /// The file.
    pub file: PathBuf,
    /// What is wrong with it (at least one entry).
    pub problems: Vec<Problem>,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {p}", self.file.display())?;
        }
        Ok(())
    }
}

/// Collects problems while a file is checked.
#[derive(Default, Debug)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Records a problem with `path` whose value is `value`.
    pub fn add(
        &mut self,
        path: impl Into<String>,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) {
        self.0.push(Problem::field(path, value, message));
    }

    /// Records a problem when `ok` is false.
    pub fn check(
        &mut self,
        ok: bool,
        path: impl Into<String>,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) {
        if !ok {
            self.add(path, value, message);
        }
    }

    /// Checks that a percentage lies strictly between 0 and 100.
    pub fn percent(&mut self, path: &str, v: f64) {
        self.check(
            v.is_finite() && v > 0.0 && v < 100.0,
            path,
            v,
            "must be between 0 and 100 (exclusive)",
        );
    }

    /// Turns the collected problems into an error for `file`, or `Ok` when there are none.
    pub fn into_result(self, file: &Path) -> Result<(), FileError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(FileError {
                file: file.to_path_buf(),
                problems: self.0,
            })
        }
    }
}

/// The largest configuration, policy or scenario file read: a bigger one is refused before it is
/// read whole (`config check /dev/zero` fails at once).
pub const FILE_CAP: u64 = 4 * 1024 * 1024;

/// Reads `file` as UTF-8 text, refusing one longer than `cap` bytes without reading past it (a
/// device or a growing file cannot make the process read without end).
pub fn read_capped(file: &Path, cap: u64) -> std::io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(file)?;
    let mut bytes = Vec::new();
    f.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {cap} bytes: not a file catchup reads"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Reads `file` (at most [`FILE_CAP`] bytes) and parses it into a TOML table; I/O and syntax errors
/// become a [`FileError`].
pub fn read_table(file: &Path) -> Result<toml::Table, FileError> {
    let text = read_capped(file, FILE_CAP).map_err(|e| FileError {
        file: file.to_path_buf(),
        problems: vec![Problem {
            path: String::new(),
            value: None,
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    parse_table(file, &text)
}

/// Parses `text` (the contents of `file`) into a TOML table.
pub fn parse_table(file: &Path, text: &str) -> Result<toml::Table, FileError> {
    text.parse::<toml::Table>().map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {col}: ")
            })
            .unwrap_or_default();
        FileError {
            file: file.to_path_buf(),
            problems: vec![Problem {
                path: String::new(),
                value: None,
                message: format!("{at}not valid TOML: {}", e.message().trim()),
            }],
        }
    })
}

/// Removes `key` from `table` and deserializes it as `T` (its default when absent); a failure is
/// recorded in `problems` with the full field path, and the default is returned so checking goes on.
pub fn take_section<T: DeserializeOwned + Default>(
    table: &mut toml::Table,
    key: &str,
    problems: &mut Problems,
) -> T {
    match table.remove(key) {
        None => T::default(),
        Some(value) => deserialize_at(value, key, problems).unwrap_or_default(),
    }
}

impl Problems {
    /// Top-level sections that already have a problem (their values fell back to defaults, so
    /// cross-field checks on them would only confuse).
    pub fn sections_with_problems(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|p| section_of(&p.path).to_string())
            .collect()
    }

    /// Adds `more`, leaving out problems in `skip` sections.
    pub fn extend_except(&mut self, more: Problems, skip: &[String]) {
        self.0.extend(
            more.0
                .into_iter()
                .filter(|p| !skip.iter().any(|s| s == section_of(&p.path))),
        );
    }
}

fn section_of(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or(path)
}

/// Deserializes `value` found at `prefix`, recording a failure in `problems`.
pub fn deserialize_at<T: DeserializeOwned>(
    value: toml::Value,
    prefix: &str,
    problems: &mut Problems,
) -> Option<T> {
    let shown = value.to_string();
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let path = join_path(prefix, &inner);
            let message = one_line(&e.into_inner().to_string());
            let value = if inner == "." || inner.is_empty() {
                Some(shorten(&shown))
            } else {
                None
            };
            problems.0.push(Problem {
                path,
                value,
                message: explain(&message),
            });
            None
        }
    }
}

/// Splits `table` into its `known` top-level keys, recording every other key as unknown.
pub fn known_keys(table: toml::Table, known: &[&str], problems: &mut Problems) -> toml::Table {
    let (keep, unknown): (toml::Table, toml::Table) = table
        .into_iter()
        .partition(|(k, _)| known.contains(&k.as_str()));
    reject_unknown(&unknown, known, problems);
    keep
}

/// Records every key left in `table` (after the known sections were taken) as unknown.
pub fn reject_unknown(table: &toml::Table, known: &[&str], problems: &mut Problems) {
    for key in table.keys() {
        problems.0.push(Problem {
            path: key.clone(),
            value: None,
            message: format!("unknown field; expected one of: {}", known.join(", ")),
        });
    }
}

fn join_path(prefix: &str, inner: &str) -> String {
    match inner {
        "" | "." => prefix.to_string(),
        _ if prefix.is_empty() => inner.to_string(),
        _ if inner.starts_with('[') => format!("{prefix}{inner}"),
        _ => format!("{prefix}.{inner}"),
    }
}

/// The toml deserializer appends "in `field`" lines and line breaks; the path already says where.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !(l.is_empty() || (l.starts_with("in `") && l.ends_with('`'))))
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ; ", "; ")
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Rewrites serde's wording into advice a person can act on.
fn explain(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return format!("unknown field {rest}; remove it or fix the spelling");
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return format!("required field {rest} is missing; add it");
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Default, Debug)]
    #[serde(deny_unknown_fields)]
    struct Section {
        #[serde(default)]
        #[allow(dead_code)]
        a: u32,
    }

    #[test]
    fn every_section_is_checked_and_paths_are_full() {
        let mut table = parse_table(
            Path::new("f.toml"),
            "[one]\na = \"x\"\n[two]\nb = 1\n[three]\n",
        )
        .unwrap();
        let mut problems = Problems::default();
        let _: Section = take_section(&mut table, "one", &mut problems);
        let _: Section = take_section(&mut table, "two", &mut problems);
        reject_unknown(&table, &["one", "two"], &mut problems);
        let err = problems
            .into_result(Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.toml: one.a: invalid type"), "{err}");
        assert!(err.contains("f.toml: two.b: unknown field `b`"), "{err}");
        assert!(err.contains("f.toml: three: unknown field"), "{err}");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = parse_table(Path::new("p.toml"), "[disk]\nceiling = = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.toml: line 2, column"), "{err}");
    }
}
