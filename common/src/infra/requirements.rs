//! Python requirement sets: parsing, normalization and PEP 723 inline metadata.
//!
//! Two spellings of the same set must give the same venv, so a set is normalized the way
//! the packaging standards compare things: names per PEP 503 (`Foo_Bar` == `foo-bar`),
//! comments and whitespace dropped, order ignored, duplicates merged, version specifiers
//! sorted without spaces (`requests>=2,<3` == `requests <3, >=2`).

use std::collections::BTreeMap;
use std::fmt;

/// A requirement line that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("requirement '{line}': {reason}")]
pub struct RequirementError {
    /// The offending line.
    pub line: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err(line: &str, reason: impl Into<String>) -> RequirementError {
    RequirementError {
        line: line.to_string(),
        reason: reason.into(),
    }
}

/// One normalized requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// PEP 503 normalized name.
    pub name: String,
    /// Sorted, normalized extras.
    pub extras: Vec<String>,
    /// Sorted specifiers without spaces, e.g. `<3`, `>=2`.
    pub specifiers: Vec<String>,
    /// `@ url` direct reference.
    pub url: Option<String>,
    /// Environment marker, whitespace collapsed.
    pub marker: Option<String>,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if !self.extras.is_empty() {
            write!(f, "[{}]", self.extras.join(","))?;
        }
        if let Some(url) = &self.url {
            write!(f, " @ {url}")?;
        } else {
            write!(f, "{}", self.specifiers.join(","))?;
        }
        if let Some(m) = &self.marker {
            write!(f, " ; {m}")?;
        }
        Ok(())
    }
}

/// PEP 503 normalization: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Strips a `#` comment (at the start, or after whitespace, as pip does).
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    match line.find(" #").or_else(|| line.find("\t#")) {
        Some(i) => &line[..i],
        None => line,
    }
}

const OPERATORS: [&str; 8] = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"];

fn parse_specifier(raw: &str, line: &str) -> Result<String, RequirementError> {
    let s: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let op = OPERATORS
        .iter()
        .find(|op| s.starts_with(**op))
        .ok_or_else(|| {
            err(
                line,
                format!("'{raw}' is not a version specifier like >=2 or ==1.4"),
            )
        })?;
    let version = &s[op.len()..];
    let valid = !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '*' | '+' | '!' | '-' | '_'));
    if !valid {
        return Err(err(
            line,
            format!("'{raw}' has no valid version after {op}"),
        ));
    }
    Ok(format!("{op}{}", version.to_ascii_lowercase()))
}

/// Parses one requirement line (PEP 508 subset: name, extras, specifiers or `@ url`, marker).
/// Returns None for blank and comment-only lines.
pub fn parse_line(raw: &str) -> Result<Option<Requirement>, RequirementError> {
    let line = strip_comment(raw).trim();
    if line.is_empty() {
        return Ok(None);
    }
    if line.starts_with('-') {
        return Err(err(
            line,
            "pip options are not accepted in requirements; set index options with RUNFLEET_PIP__* instead",
        ));
    }
    let (body, marker) = match line.split_once(';') {
        Some((b, m)) if !m.trim().is_empty() => (b.trim(), Some(collapse_ws(m))),
        Some(_) => return Err(err(line, "empty environment marker after ';'")),
        None => (line, None),
    };
    let name_end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(body.len());
    let name = &body[..name_end];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(err(line, "does not start with a package name"));
    }
    let mut rest = body[name_end..].trim_start();
    let mut extras = Vec::new();
    if let Some(after) = rest.strip_prefix('[') {
        let (inside, tail) = after
            .split_once(']')
            .ok_or_else(|| err(line, "unclosed '[' in extras"))?;
        for e in inside.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            extras.push(normalize_name(e));
        }
        rest = tail.trim_start();
    }
    let mut url = None;
    let mut specifiers = Vec::new();
    if let Some(u) = rest.strip_prefix('@') {
        let u = u.trim();
        if u.is_empty() || u.contains(char::is_whitespace) {
            return Err(err(line, "'@' must be followed by one URL"));
        }
        url = Some(u.to_string());
    } else {
        let specs = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or(rest);
        for s in specs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            specifiers.push(parse_specifier(s, line)?);
        }
    }
    extras.sort();
    extras.dedup();
    specifiers.sort();
    specifiers.dedup();
    Ok(Some(Requirement {
        name: normalize_name(name),
        extras,
        specifiers,
        url,
        marker,
    }))
}

/// A normalized requirement set: merged, deduplicated, in a canonical order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequirementSet {
    by_key: BTreeMap<(String, Option<String>), Requirement>,
}

impl RequirementSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every line of `lines` (blank lines and comments skipped), merging duplicates:
    /// extras and specifiers of the same name (and marker) are combined.
    pub fn extend<'a>(
        &mut self,
        lines: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), RequirementError> {
        for line in lines {
            let Some(req) = parse_line(line)? else {
                continue;
            };
            let key = (req.name.clone(), req.marker.clone());
            match self.by_key.get_mut(&key) {
                None => {
                    self.by_key.insert(key, req);
                }
                Some(have) => {
                    // A direct URL cannot be combined with another URL or with versions.
                    let has_url = have.url.is_some() || req.url.is_some();
                    if has_url && (have.url != req.url || !req.specifiers.is_empty()) {
                        return Err(err(
                            line,
                            format!("conflicts with an earlier requirement for {}", req.name),
                        ));
                    }
                    have.extras.extend(req.extras);
                    have.extras.sort();
                    have.extras.dedup();
                    have.specifiers.extend(req.specifiers);
                    have.specifiers.sort();
                    have.specifiers.dedup();
                }
            }
        }
        Ok(())
    }

    /// True when nothing is required.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The canonical lines, sorted by name: what is hashed and what is installed.
    pub fn lines(&self) -> Vec<String> {
        self.by_key.values().map(ToString::to_string).collect()
    }
}

/// The `dependencies` of a PEP 723 `# /// script` block in `source`, if there is one.
pub fn pep723_dependencies(source: &str) -> Result<Vec<String>, RequirementError> {
    let mut lines = source.lines();
    let mut block: Option<Vec<String>> = None;
    while let Some(line) = lines.next() {
        if line.trim_end() != "# /// script" {
            continue;
        }
        if block.is_some() {
            return Err(err("# /// script", "more than one PEP 723 script block"));
        }
        let mut content = Vec::new();
        let mut closed = false;
        for inner in lines.by_ref() {
            let inner = inner.trim_end();
            if inner == "# ///" {
                closed = true;
                break;
            }
            if inner == "#" {
                content.push(String::new());
            } else if let Some(text) = inner.strip_prefix("# ") {
                content.push(text.to_string());
            } else {
                return Err(err(
                    inner,
                    "inside a PEP 723 block every line starts with '# '",
                ));
            }
        }
        if !closed {
            return Err(err(
                "# /// script",
                "PEP 723 block is not closed with '# ///'",
            ));
        }
        block = Some(content);
    }
    let Some(content) = block else {
        return Ok(Vec::new());
    };
    let doc: toml::Table = content.join("\n").parse().map_err(|e: toml::de::Error| {
        err("# /// script", format!("invalid TOML: {}", e.message()))
    })?;
    match doc.get("dependencies") {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err("# /// script", "dependencies must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(err(
            "# /// script",
            "dependencies must be a list of strings",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(lines: &[&str]) -> Vec<String> {
        let mut s = RequirementSet::new();
        s.extend(lines.iter().copied()).unwrap();
        s.lines()
    }

    #[test]
    fn names_normalize_per_pep_503() {
        assert_eq!(normalize_name("Foo_Bar"), "foo-bar");
        assert_eq!(normalize_name("foo.-_bar"), "foo-bar");
        assert_eq!(normalize_name("PyYAML"), "pyyaml");
    }

    #[test]
    fn equal_sets_in_different_spellings_are_equal() {
        let a = set(&[
            "requests>=2,<3",
            "Foo_Bar",
            "# comment",
            "",
            "jinja2 ; python_version >= '3.8'",
        ]);
        let b = set(&[
            "jinja2;python_version   >= '3.8'",
            "  foo-bar  # trailing comment",
            "requests <3, >=2",
            "requests>=2",
        ]);
        assert_eq!(a, b);
        assert_eq!(a[2], "requests<3,>=2");
    }

    #[test]
    fn a_new_pin_is_a_different_set() {
        assert_ne!(set(&["requests==2.31.0"]), set(&["requests==2.32.0"]));
        assert_ne!(set(&["requests"]), set(&["requests[socks]"]));
    }

    #[test]
    fn duplicates_merge_extras_and_specifiers() {
        assert_eq!(
            set(&["Requests[socks]>=2", "requests[security]<3"]),
            vec!["requests[security,socks]<3,>=2"]
        );
        assert_eq!(
            set(&["pkg @ https://x/pkg.whl"]),
            vec!["pkg @ https://x/pkg.whl"]
        );
        assert_eq!(set(&["pkg (>=1, <2)"]), vec!["pkg<2,>=1"]);
    }

    #[test]
    fn bad_lines_are_errors() {
        for bad in [
            "-r other.txt",
            "--index-url x",
            ">=2",
            "requests>>2",
            "requests[",
            "pkg @",
            "requests ==",
            "pkg;",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
        let mut s = RequirementSet::new();
        assert!(
            s.extend(["pkg @ https://a/x.whl", "pkg @ https://b/x.whl"])
                .is_err()
        );
    }

    #[test]
    fn pep723_block_is_read() {
        let src = "#!/usr/bin/env python3\n# /// script\n# requires-python = \">=3.11\"\n# dependencies = [\n#   \"requests<3\",\n#   \"rich\",\n# ]\n# ///\nimport requests\n";
        assert_eq!(
            pep723_dependencies(src).unwrap(),
            vec!["requests<3", "rich"]
        );
        assert!(pep723_dependencies("print(1)\n").unwrap().is_empty());
        assert!(pep723_dependencies("# /// script\n# dependencies = [\"a\"]\n").is_err());
        assert!(pep723_dependencies("# /// script\n# dependencies = 3\n# ///\n").is_err());
        assert!(pep723_dependencies("# /// script\nbad\n# ///\n").is_err());
    }
}
