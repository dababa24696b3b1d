//! Secret config values and their `${env:NAME}` / `${file:PATH}` references.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

/// A config string that may hold a credential. `Debug` never shows it, so a
/// logged config cannot leak an upstream token or a password hash.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value that is already resolved.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The value, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every `${env:NAME}` with the variable's value and every
    /// `${file:PATH}` with the file's contents (trailing newline removed;
    /// relative paths from `dir`). The error names the reference, never a value.
    pub(super) fn resolve(&mut self, dir: &Path) -> Result<(), String> {
        if !self.0.contains("${") {
            return Ok(());
        }
        let mut out = String::with_capacity(self.0.len());
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or("`${` without a closing `}`")?;
            out.push_str(&lookup(&after[..end], dir)?);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        self.0 = out;
        Ok(())
    }
}

fn lookup(reference: &str, dir: &Path) -> Result<String, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| format!("environment variable {name} is not set"));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        let full = dir.join(path);
        let text = std::fs::read_to_string(&full)
            .map_err(|e| format!("cannot read {}: {e}", full.display()))?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
    }
    Err(format!(
        "`${{{reference}}}` is not a reference; use ${{env:NAME}} or ${{file:PATH}}"
    ))
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_file_references_are_replaced_inside_a_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "from-file\n").unwrap();
        std::env::set_var("REPOGATE_TEST_SECRET_A", "from-env");
        let mut s = SecretString::new("Bearer ${env:REPOGATE_TEST_SECRET_A}/${file:tok}");
        s.resolve(dir.path()).unwrap();
        assert_eq!(s.expose(), "Bearer from-env/from-file");
    }

    #[test]
    fn a_missing_variable_is_named_without_any_value() {
        let mut s = SecretString::new("${env:REPOGATE_TEST_SURELY_UNSET}");
        let err = s.resolve(Path::new(".")).unwrap_err();
        assert!(err.contains("REPOGATE_TEST_SURELY_UNSET"), "{err}");
    }

    #[test]
    fn unknown_and_unclosed_references_are_errors() {
        assert!(SecretString::new("${vault:x}")
            .resolve(Path::new("."))
            .is_err());
        assert!(SecretString::new("${env:X")
            .resolve(Path::new("."))
            .is_err());
    }

    #[test]
    fn debug_output_is_redacted() {
        assert_eq!(format!("{:?}", SecretString::new("hunter2")), "<redacted>");
    }
}
