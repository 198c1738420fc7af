//! Where settings come from, in rising precedence: built-in defaults < a TOML file
//! (`config/default.toml` when present, or the file `APP_CONFIG` names) < the
//! environment. The file uses the environment's names, in any case:
//!
//! ```toml
//! port = 8080
//! db_max_connections = 20
//! log_format = "json"
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, Settings};

/// The file read when `APP_CONFIG` is not set, relative to the working directory.
pub const DEFAULT_FILE: &str = "config/default.toml";

/// Where one explicitly set value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Environment,
    File(PathBuf),
}

/// The effective settings and, for every value set explicitly, its source.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub sources: Vec<(String, Source, String)>,
}

/// Reads the process environment and the configuration file.
pub fn load() -> Result<Loaded, ConfigError> {
    let env = |var: &str| std::env::var(var).ok();
    let file = match env("APP_CONFIG").filter(|p| !p.trim().is_empty()) {
        Some(path) => Some(read_file(Path::new(&path))?),
        None if Path::new(DEFAULT_FILE).exists() => Some(read_file(Path::new(DEFAULT_FILE))?),
        None => None,
    };
    layered(env, file)
}

/// The layering itself, over any environment (for tests).
pub fn layered(
    env: impl Fn(&str) -> Option<String>,
    file: Option<(PathBuf, BTreeMap<String, String>)>,
) -> Result<Loaded, ConfigError> {
    let asked = RefCell::new(Vec::<(String, Source, String)>::new());
    let known = RefCell::new(Vec::<String>::new());
    let lookup = |var: &str| {
        known.borrow_mut().push(var.to_owned());
        let from_env = env(var).filter(|v| !v.trim().is_empty());
        if let Some(value) = from_env {
            asked
                .borrow_mut()
                .push((var.to_owned(), Source::Environment, value.clone()));
            return Some(value);
        }
        let (path, values) = file.as_ref()?;
        let value = values.get(var)?.clone();
        asked
            .borrow_mut()
            .push((var.to_owned(), Source::File(path.clone()), value.clone()));
        Some(value)
    };
    let settings = Settings::from_lookup(lookup)?;
    if let Some((path, values)) = &file {
        let known = known.borrow();
        if let Some(unknown) = values.keys().find(|k| !known.contains(k)) {
            return Err(ConfigError {
                var: "APP_CONFIG",
                reason: format!(
                    "{}: unknown setting `{}` (see docs/configuration.md)",
                    path.display(),
                    unknown.to_lowercase()
                ),
            });
        }
    }
    let mut sources = asked.into_inner();
    sources.dedup_by(|a, b| a.0 == b.0);
    Ok(Loaded { settings, sources })
}

fn read_file(path: &Path) -> Result<(PathBuf, BTreeMap<String, String>), ConfigError> {
    let error = |reason: String| ConfigError {
        var: "APP_CONFIG",
        reason: format!("{}: {reason}", path.display()),
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| error(e.to_string()))?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(error(format!(
                    "`{key}` must be a string, number or boolean, not {}",
                    other.type_str()
                )));
            }
        };
        values.insert(key.to_uppercase(), value);
    }
    Ok((path.to_owned(), values))
}

/// Variables whose values are never printed.
const SECRETS: [&str; 3] = ["JWT_SECRET", "JWT_PREVIOUS_SECRETS", "ADMIN_PASSWORD"];

/// `app config`: the effective configuration, secrets redacted.
pub fn describe(loaded: &Loaded) -> String {
    let mut out = String::from("# Explicitly set (everything else is the default)\n");
    if loaded.sources.is_empty() {
        out.push_str("#   nothing: every setting is its default\n");
    }
    for (var, source, value) in &loaded.sources {
        let shown = if SECRETS.contains(&var.as_str()) {
            "<redacted>".to_owned()
        } else if var.ends_with("_URL") || var.ends_with("_ENDPOINT") || value.contains("://") {
            // Every address may carry credentials (user info, a token in the query).
            postgres_adapter::redact_url(value)
        } else {
            value.clone()
        };
        let from = match source {
            Source::Environment => "environment".to_owned(),
            Source::File(path) => path.display().to_string(),
        };
        out.push_str(&format!("{var} = {shown}    # {from}\n"));
    }
    out.push_str("\n# Effective settings\n");
    out.push_str(&format!("{:#?}\n", loaded.settings));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(pairs: &[(&str, &str)]) -> Option<(PathBuf, BTreeMap<String, String>)> {
        Some((
            PathBuf::from("test.toml"),
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ))
    }

    #[test]
    fn the_environment_overrides_the_file_which_overrides_defaults() {
        let env = |var: &str| (var == "PORT").then(|| "9000".to_owned());
        let loaded = layered(env, file(&[("PORT", "7000"), ("GRPC_PORT", "7001")])).unwrap();
        assert_eq!(loaded.settings.listen.port, 9000);
        assert_eq!(loaded.settings.listen.grpc_port, 7001);
        assert_eq!(loaded.settings.listen.host, "127.0.0.1");
        assert!(loaded.sources.contains(&(
            "GRPC_PORT".into(),
            Source::File("test.toml".into()),
            "7001".into()
        )));
    }

    #[test]
    fn unknown_and_invalid_file_settings_are_refused_by_name() {
        let err = layered(|_| None, file(&[("PROT", "7000")])).unwrap_err();
        assert!(err.reason.contains("unknown setting `prot`"), "{err}");
        let err = layered(|_| None, file(&[("PORT", "eighty")])).unwrap_err();
        assert_eq!(err.var, "PORT");
    }

    #[test]
    fn a_toml_file_is_read_with_any_key_case() {
        let dir = std::env::temp_dir().join(format!("app-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "port = 7000\nLOG_FORMAT = \"json\"\n").unwrap();
        let (_, values) = read_file(&path).unwrap();
        assert_eq!(values.get("PORT").map(String::as_str), Some("7000"));
        assert_eq!(values.get("LOG_FORMAT").map(String::as_str), Some("json"));
        std::fs::write(&path, "port = [1]\n").unwrap();
        assert!(read_file(&path).unwrap_err().reason.contains("`port`"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_are_redacted_in_the_description() {
        let env = |var: &str| match var {
            "JWT_SECRET" => Some("super-secret-signing-key-0123456789abcdef".to_owned()),
            "DATABASE_URL" => Some("postgres://app:hunter2@db:5432/app".to_owned()),
            _ => None,
        };
        let text = describe(&layered(env, None).unwrap());
        assert!(!text.contains("super-secret-signing-key"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("DATABASE_URL"), "{text}");
    }

    /// Every setting the service reads is in `docs/configuration.md`'s table, and the
    /// table names nothing the service does not read: the documentation cannot drift.
    #[test]
    fn the_configuration_page_documents_every_setting() {
        let known = RefCell::new(Vec::<String>::new());
        let everything_set = |var: &str| {
            known.borrow_mut().push(var.to_owned());
            match var {
                "DATABASE_URL" => Some("postgres://localhost/app".to_owned()),
                "JWT_SECRET" => Some("0123456789abcdef0123456789abcdef".to_owned()),
                _ => None,
            }
        };
        Settings::from_lookup(everything_set).unwrap();
        let mut read: Vec<String> = known.into_inner();
        read.sort();
        read.dedup();
        let page = include_str!("../../../docs/configuration.md");
        let table = page
            .split("## Settings")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap();
        let mut documented: Vec<String> = table
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_owned)
            .collect();
        documented.sort();
        // Read by the binary itself rather than by `Settings`.
        let outside = ["ADMIN_PASSWORD", "APP_CONFIG", "RUST_LOG"];
        let missing: Vec<_> = read.iter().filter(|v| !documented.contains(v)).collect();
        let stale: Vec<_> = documented
            .iter()
            .filter(|v| !read.contains(v) && !outside.contains(&v.as_str()))
            .collect();
        assert!(missing.is_empty(), "undocumented settings: {missing:?}");
        assert!(stale.is_empty(), "documented but never read: {stale:?}");
    }
}
