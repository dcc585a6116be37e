//! The device and app context recorded with every report.

use serde_json::{Map, Value};

use crate::config::AppInfo;

/// The parts of the context that do not change while the process runs.
pub(crate) fn base_context(app: &AppInfo) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "library_version".into(),
        Value::from(env!("CARGO_PKG_VERSION")),
    );
    m.insert("os".into(), Value::from(std::env::consts::OS));
    m.insert("arch".into(), Value::from(std::env::consts::ARCH));
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), Value::from(v.as_str()));
        }
    };
    put("app_name", &app.name);
    put("app_version", &app.version);
    put("app_build", &app.build);
    put("device_model", &app.device_model);
    let locale = app.locale.clone().or_else(env_locale);
    put("locale", &locale);
    m
}

/// The POSIX locale from the environment as a BCP 47 tag (`en_US.UTF-8`
/// becomes `en-US`); `None` for the C/POSIX locale.
fn env_locale() -> Option<String> {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
        .and_then(|v| posix_to_bcp47(&v))
}

fn posix_to_bcp47(v: &str) -> Option<String> {
    let base = v.split(['.', '@']).next().unwrap_or("");
    if base.is_empty() || base == "C" || base == "POSIX" {
        return None;
    }
    Some(base.replace('_', "-"))
}

/// A one-line description of where a crash happened.
pub(crate) fn crash_description(ctx: &Map<String, Value>) -> String {
    let get = |k: &str| ctx.get(k).and_then(Value::as_str).unwrap_or("");
    let mut app = get("app_name").to_string();
    if !get("app_version").is_empty() {
        app.push_str(&format!(" {}", get("app_version")));
    }
    if !get("app_build").is_empty() {
        app.push_str(&format!(" ({})", get("app_build")));
    }
    let app = if app.trim().is_empty() {
        "the app".to_string()
    } else {
        app.trim().to_string()
    };
    format!(
        "Crash report from {app} on {}/{}{}; captured by fieldreport {}.",
        get("os"),
        get("arch"),
        if get("device_model").is_empty() {
            String::new()
        } else {
            format!(", {}", get("device_model"))
        },
        get("library_version")
    )
}

/// The first line of a log that says something: not blank, not only
/// punctuation or separators; at most 200 characters.
pub(crate) fn first_meaningful_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| l.chars().any(char::is_alphanumeric))
        .map(|l| {
            let l: String = l.chars().filter(|c| !c.is_control()).collect();
            if l.chars().count() > 200 {
                let mut s: String = l.chars().take(199).collect();
                s.push('…');
                s
            } else {
                l
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_conversion() {
        assert_eq!(posix_to_bcp47("en_US.UTF-8"), Some("en-US".into()));
        assert_eq!(posix_to_bcp47("de_DE@euro"), Some("de-DE".into()));
        assert_eq!(posix_to_bcp47("C.UTF-8"), None);
        assert_eq!(posix_to_bcp47("POSIX"), None);
    }

    #[test]
    fn meaningful_line_skips_noise() {
        let log = "\n   \n=========\n-- \nthread 'main' panicked at src/x.rs:3\nmore";
        assert_eq!(
            first_meaningful_line(log),
            Some("thread 'main' panicked at src/x.rs:3".into())
        );
        assert_eq!(first_meaningful_line("---\n\n"), None);
        let long = "x".repeat(500);
        assert_eq!(first_meaningful_line(&long).unwrap().chars().count(), 200);
    }

    #[test]
    fn context_has_the_basics() {
        let app = AppInfo {
            name: Some("Widget".into()),
            version: Some("2.1".into()),
            build: Some("77".into()),
            locale: Some("fr-FR".into()),
            device_model: None,
        };
        let c = base_context(&app);
        assert_eq!(c["os"], std::env::consts::OS);
        assert_eq!(c["locale"], "fr-FR");
        assert_eq!(c["library_version"], env!("CARGO_PKG_VERSION"));
        assert!(crash_description(&c).contains("Widget 2.1 (77)"));
    }
}
