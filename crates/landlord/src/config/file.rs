//! `--config FILE` (or `LANDLORD_CONFIG`): a TOML file whose keys are the variable names
//! (`DATABASE_URL = "…"`, `LANDLORD_WORKER_CONCURRENCY = 16`, lists as arrays). It fills
//! in what the environment does not set, so flags and variables still win.

use std::collections::BTreeSet;
use std::path::Path;

/// Read `path` and export each of its settings the environment does not already set.
/// `known` is every variable name a setting reads; any other key is an error, as is a
/// value that is not a string, number, boolean or array of those.
pub fn apply_file(path: &Path, known: &BTreeSet<String>) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the configuration file {}: {e}", path.display()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        format!(
            "the configuration file {} is not valid TOML: {}",
            path.display(),
            e.message()
        )
    })?;
    let mut problems = Vec::new();
    let mut values = Vec::new();
    for (key, value) in &table {
        if !known.contains(key) {
            problems.push(format!("unknown setting {key}"));
            continue;
        }
        match plain(value) {
            Some(v) => values.push((key, v)),
            None => problems.push(format!(
                "{key} must be a string, a number, a boolean or a list of those"
            )),
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "the configuration file {}: {}",
            path.display(),
            problems.join("; ")
        ));
    }
    for (key, value) in values {
        if std::env::var_os(key).is_none() {
            // SAFETY: called from `main` before the runtime or any other thread starts,
            // so nothing reads the environment concurrently.
            unsafe { std::env::set_var(key, value) };
        }
    }
    Ok(())
}

/// A TOML value as the variable's text: lists comma-separated.
fn plain(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| match v {
                toml::Value::Array(_) | toml::Value::Table(_) => None,
                other => plain(other),
            })
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        toml::Value::Datetime(_) | toml::Value::Table(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_variable_text() {
        let t: toml::Table =
            "A = \"x\"\nB = 16\nC = [\"192.0.2.1\", \"192.0.2.2\"]\nD = true\nE = { x = 1 }"
                .parse()
                .unwrap();
        assert_eq!(plain(&t["A"]).as_deref(), Some("x"));
        assert_eq!(plain(&t["B"]).as_deref(), Some("16"));
        assert_eq!(plain(&t["C"]).as_deref(), Some("192.0.2.1,192.0.2.2"));
        assert_eq!(plain(&t["D"]).as_deref(), Some("true"));
        assert_eq!(plain(&t["E"]), None);
    }
}
