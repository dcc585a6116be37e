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

/// The context in the blocks of an Apptentive record (`device`,
/// `app_version`, `client`), which every destination but Centercode maps
/// from: the stored flat items, plus what this machine's OS tells.
pub(crate) fn blocks(flat: &Map<String, Value>) -> Map<String, Value> {
    let item = |k: &str| flat.get(k).filter(|v| !v.is_null()).cloned();
    let mut device = Map::new();
    let mut app = Map::new();
    let mut client = Map::new();
    let put = |block: &mut Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            block.insert(k.into(), v);
        }
    };
    put(&mut device, "os_name", item("os"));
    put(&mut device, "cpu", item("arch"));
    put(&mut device, "model", item("device_model"));
    for (k, v) in host_device() {
        put(&mut device, k, Some(Value::from(v.as_str())));
    }
    put(&mut app, "version", item("app_version"));
    put(&mut app, "build_number", item("app_build"));
    put(&mut app, "primary_locale", item("locale"));
    put(&mut client, "version", item("library_version"));
    put(&mut client, "platform", item("os"));
    put(&mut client, "language", Some(Value::from("rust")));
    let mut m = Map::new();
    for (name, block) in [("device", device), ("app_version", app), ("client", client)] {
        if !block.is_empty() {
            m.insert(name.into(), Value::Object(block));
        }
    }
    m
}

/// What the OS says about the device (Linux: `/etc/os-release`, the
/// kernel release, `/sys/class/dmi/id`), read once per process: it does not
/// change while the process runs. Never a hardware serial or id.
fn host_device() -> &'static [(&'static str, String)] {
    static HOST: std::sync::OnceLock<Vec<(&'static str, String)>> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let mut out = Vec::new();
        if cfg!(target_os = "linux") {
            if let Some(release) = read("/etc/os-release") {
                let field = |key: &str| {
                    release.lines().find_map(|l| {
                        l.strip_prefix(key)
                            .and_then(|r| r.strip_prefix('='))
                            .map(|v| v.trim_matches('"').to_string())
                    })
                };
                if let Some(v) = field("VERSION_ID") {
                    out.push(("os_version", v));
                }
                if let Some(v) = field("ID") {
                    out.push(("brand", v));
                }
            }
            if let Some(v) = read("/proc/sys/kernel/osrelease") {
                out.push(("os_build", v));
            }
            for (key, file) in [
                ("manufacturer", "sys_vendor"),
                ("product", "product_name"),
                ("board", "board_name"),
            ] {
                if let Some(v) = read(&format!("/sys/class/dmi/id/{file}")) {
                    out.push((key, v));
                }
            }
        }
        out
    })
}

#[cfg(test)]
mod block_tests {
    use super::*;

    #[test]
    fn flat_items_land_in_their_blocks() {
        let mut flat = Map::new();
        flat.insert("os".into(), Value::from("linux"));
        flat.insert("arch".into(), Value::from("x86_64"));
        flat.insert("app_version".into(), Value::from("2.3.1"));
        flat.insert("app_build".into(), Value::from("4512"));
        flat.insert("library_version".into(), Value::from("0.1.0"));
        let b = blocks(&flat);
        assert_eq!(b["device"]["os_name"], "linux");
        assert_eq!(b["device"]["cpu"], "x86_64");
        assert_eq!(b["app_version"]["version"], "2.3.1");
        assert_eq!(b["app_version"]["build_number"], "4512");
        assert_eq!(b["client"]["version"], "0.1.0");
        assert!(b["app_version"].get("primary_locale").is_none());
    }
}
