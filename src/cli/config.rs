//! The configuration file (`/etc/venuebox/venuebox.toml`, or `--config
//! FILE` / `VENUEBOX_CONFIG`): every `serve` setting under its flag's name
//! (`https-listen = "0.0.0.0:8443"`, `simulate = true`, `organiser-key =
//! ["…", "…"]`). Flags and environment variables override it: the file's
//! settings go onto the command line in front of the flags actually given
//! (the last of a flag wins), and a setting whose environment variable is
//! set is left out. `venuebox config check` shows the effective settings
//! and where each came from.

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use std::ffi::OsString;
use std::path::Path;

/// Where the Debian package puts the file (the systemd unit names it).
pub const PACKAGED: &str = "/etc/venuebox/venuebox.toml";

/// The file's settings as `serve` flags, checked against `serve`'s own
/// arguments: an unknown name, a table or a wrong type is an error naming
/// the setting. Settings whose environment variable is set are left out.
pub fn flags(serve: &Command, file: &Path) -> Result<Vec<OsString>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the configuration file {}", file.display()))?;
    let table: toml::Table = text.parse().with_context(|| {
        format!("{} is not valid TOML (settings are `name = value` lines)", file.display())
    })?;
    let mut out = Vec::new();
    for (key, value) in &table {
        let name = key.replace('_', "-");
        let arg = serve
            .get_arguments()
            .find(|a| {
                a.get_long() == Some(name.as_str())
                    && !a.is_hide_set()
                    && !matches!(name.as_str(), "config" | "help")
            })
            .with_context(|| {
                format!("unknown setting '{key}' in {}: settings are the long flags of `venuebox serve --help`", file.display())
            })?;
        if arg.get_env().is_some_and(|e| std::env::var_os(e).is_some()) {
            continue;
        }
        let flag = format!("--{name}");
        let is_switch = matches!(arg.get_action(), ArgAction::SetTrue);
        let values: Vec<&toml::Value> = match value {
            toml::Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for v in values {
            let text = match (v, is_switch) {
                (toml::Value::Boolean(on), true) => {
                    if *on {
                        out.push(OsString::from(&flag));
                    }
                    continue;
                }
                (_, true) => {
                    bail!("setting '{key}' in {} is on or off: write {key} = true", file.display())
                }
                (toml::Value::String(s), _) => s.clone(),
                (toml::Value::Integer(i), _) => i.to_string(),
                (toml::Value::Float(f), _) => f.to_string(),
                (toml::Value::Boolean(b), _) => b.to_string(),
                _ => bail!(
                    "setting '{key}' in {} must be a string, a number or a list of them",
                    file.display()
                ),
            };
            out.push(OsString::from(format!("{flag}={text}")));
        }
    }
    Ok(out)
}

/// `argv` with the file's settings in front of the subcommand's own flags
/// (after the subcommand's name), so that what is typed wins.
pub fn inject(argv: Vec<OsString>, at: usize, settings: Vec<OsString>) -> Vec<OsString> {
    let mut out = argv;
    let tail = out.split_off(at);
    out.extend(settings);
    out.extend(tail);
    out
}

/// The effective settings of a parsed `serve`, one line each: name, value
/// (secrets masked) and where it came from.
pub fn effective(serve: &Command, m: &ArgMatches, from_file: &[String]) -> String {
    let mut out = String::new();
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if arg.is_hide_set() || matches!(long, "help" | "config" | "version") {
            continue;
        }
        let id = arg.get_id().as_str();
        let values: Vec<String> = m
            .get_raw(id)
            .map(|v| v.map(|x| mask(long, &x.to_string_lossy())).collect())
            .unwrap_or_default();
        let source = match m.value_source(id) {
            Some(ValueSource::CommandLine) if from_file.iter().any(|k| k == long) => "file",
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        let shown = if values.is_empty() { "-".to_string() } else { values.join(", ") };
        out += &format!("{long:<32} {shown:<40} ({source})\n");
    }
    out
}

/// A value as `config check` prints it: secrets never, URLs without their
/// credentials and query.
fn mask(name: &str, value: &str) -> String {
    if ["secret", "password", "token"].iter().any(|s| name.contains(s)) {
        return "****".into();
    }
    let Some((scheme, rest)) = value.split_once("://") else { return value.to_string() };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("****@{host}"),
        None => authority.to_string(),
    };
    let path = path.map(|p| match p.split_once('?') {
        Some((p, _)) => format!("/{p}?****"),
        None => format!("/{p}"),
    });
    format!("{scheme}://{authority}{}", path.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_and_query() {
        assert_eq!(
            mask("manifest-url", "https://u:p@cdn.example/m.json?sig=abc"),
            "https://****@cdn.example/m.json?****"
        );
        assert_eq!(mask("sync", "s3://bucket/prefix"), "s3://bucket/prefix");
        assert_eq!(mask("sync-secret", "x"), "****");
        assert_eq!(mask("listen", "0.0.0.0:8080"), "0.0.0.0:8080");
    }

    #[test]
    fn settings_go_in_front_of_the_typed_flags() {
        let argv: Vec<OsString> =
            ["venuebox", "serve", "--listen", "a"].map(OsString::from).to_vec();
        let got = inject(argv, 2, vec!["--listen=b".into()]);
        assert_eq!(got, ["venuebox", "serve", "--listen=b", "--listen", "a"].map(OsString::from));
    }
}
