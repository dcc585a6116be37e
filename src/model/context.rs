//! The device and app context recorded with every report.

use serde_json::{Map, Value};

use std::collections::BTreeMap;

use crate::config::{AppInfo, DEVICE_KEYS};

/// The flat context item that carries the outbox's per-install device id,
/// reported as the `uuid` of the `device` block.
pub(crate) const DEVICE_ID_ITEM: &str = "device.uuid";

/// The parts of the context that do not change while the process runs:
/// the app's items, and the device items as `device.<key>` (what the OS
/// tells, overridden by what the app sets). The device id is added by the
/// client, which keeps it in the outbox.
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
    for (k, v) in host_device() {
        m.insert(format!("device.{k}"), Value::from(v.as_str()));
    }
    for (k, v) in &app.device {
        m.insert(format!("device.{k}"), Value::from(v.trim()));
    }
    m
}

/// Checks the device items an app sets (`AppInfo::device`); the reason
/// names the item.
pub(crate) fn check_device_items(items: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in items {
        if k == "uuid" {
            return Err(
                "app.device.uuid: the device id is the library's own random \
                 per-install UUID (kept in the outbox); an app cannot set it"
                    .into(),
            );
        }
        if !DEVICE_KEYS.contains(&k.as_str()) {
            return Err(format!(
                "app.device: unknown key {k:?} (known: {})",
                DEVICE_KEYS.join(", ")
            ));
        }
        if v.trim().is_empty() {
            return Err(format!("app.device.{k} is blank"));
        }
        if v.chars().any(char::is_control) {
            return Err(format!("app.device.{k} contains control characters"));
        }
        if v.chars().count() > 256 {
            return Err(format!(
                "app.device.{k} is {} characters long, more than 256",
                v.chars().count()
            ));
        }
    }
    Ok(())
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
            device: BTreeMap::from([("manufacturer".to_string(), " Acme ".to_string())]),
        };
        let c = base_context(&app);
        assert_eq!(c["os"], std::env::consts::OS);
        assert_eq!(c["locale"], "fr-FR");
        assert_eq!(c["library_version"], env!("CARGO_PKG_VERSION"));
        assert!(crash_description(&c).contains("Widget 2.1 (77)"));
        // The app's device items are kept as `device.<key>`, trimmed, and
        // win over the OS's.
        assert_eq!(c["device.manufacturer"], "Acme");
        assert_eq!(blocks(&c)["device"]["manufacturer"], "Acme");
    }

    #[test]
    fn device_items_are_checked() {
        let check = |k: &str, v: &str| check_device_items(&BTreeMap::from([(k.into(), v.into())]));
        assert_eq!(check("model", "Pixel 8"), Ok(()));
        assert!(check("uuid", "46D40D5E-C11C-6F51-BD1F-CD8C922CCA1E")
            .unwrap_err()
            .contains("per-install"));
        assert!(check("serial", "x")
            .unwrap_err()
            .contains("unknown key \"serial\""));
        assert!(check("board", "  ")
            .unwrap_err()
            .contains("app.device.board is blank"));
        assert!(check("brand", "a\nb").unwrap_err().contains("control"));
        assert!(check("cpu", &"x".repeat(257))
            .unwrap_err()
            .contains("more than 256"));
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
    // Reports stored before the device items were recorded with them get
    // what this OS tells now; the stored `device.<key>` items win.
    for (k, v) in host_device() {
        put(&mut device, k, Some(Value::from(v.as_str())));
    }
    for (k, v) in flat {
        if let Some(key) = k.strip_prefix("device.") {
            if !v.is_null() && !key.is_empty() {
                device.insert(key.into(), v.clone());
            }
        }
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
/// kernel release, the CPU model from `/proc/cpuinfo`, `/sys/class/dmi/id`),
/// read once per process: it does not change while the process runs. Never
/// a hardware serial or id.
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
            if let Some(v) = read("/proc/cpuinfo").and_then(|t| cpu_from_cpuinfo(&t)) {
                out.push(("cpu", v));
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

/// The CPU model that `/proc/cpuinfo` names, or `None`. Only these lines
/// are read (never `Serial`, `Revision` or any other id): `model name`
/// (x86, some ARM), else `Hardware` (the SoC on older ARM kernels), else
/// `Processor` (older ARM), else the cores' `CPU implementer` and
/// `CPU part` (arm64), each distinct core once (`ARM Cortex-A55 + ARM
/// Cortex-A76` for big.LITTLE).
pub(crate) fn cpu_from_cpuinfo(text: &str) -> Option<String> {
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let first = |key: &str| {
        lines
            .iter()
            // Exact case: `processor` (a core's number) is not `Processor`.
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    if let Some(v) = first("model name")
        .or_else(|| first("Hardware"))
        .or_else(|| first("Processor"))
    {
        return Some(v);
    }
    // Each processor block gives an implementer, then a part.
    let mut cores: Vec<String> = Vec::new();
    let mut implementer: Option<&str> = None;
    for (k, v) in &lines {
        match *k {
            "CPU implementer" => implementer = Some(v),
            "CPU part" => {
                let core = arm_core(implementer.unwrap_or(""), v);
                if !cores.contains(&core) {
                    cores.push(core);
                }
            }
            _ => {}
        }
    }
    (!cores.is_empty()).then(|| cores.join(" + "))
}

/// An arm64 core's name from its implementer and part numbers (the values
/// of the MIDR register the kernel shows); numbers this table does not
/// know are shown as they are.
fn arm_core(implementer: &str, part: &str) -> String {
    let number = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let vendor = match number(implementer) {
        Some(0x41) => "ARM",
        Some(0x42) => "Broadcom",
        Some(0x48) => "HiSilicon",
        Some(0x4e) => "NVIDIA",
        Some(0x51) => "Qualcomm",
        Some(0x53) => "Samsung",
        Some(0x61) => "Apple",
        Some(0xc0) => "Ampere",
        _ => "",
    };
    let core = match (vendor, number(part)) {
        ("ARM", Some(0xd03)) => "Cortex-A53",
        ("ARM", Some(0xd04)) => "Cortex-A35",
        ("ARM", Some(0xd05)) => "Cortex-A55",
        ("ARM", Some(0xd07)) => "Cortex-A57",
        ("ARM", Some(0xd08)) => "Cortex-A72",
        ("ARM", Some(0xd09)) => "Cortex-A73",
        ("ARM", Some(0xd0a)) => "Cortex-A75",
        ("ARM", Some(0xd0b)) => "Cortex-A76",
        ("ARM", Some(0xd0c)) => "Neoverse-N1",
        ("ARM", Some(0xd0d)) => "Cortex-A77",
        ("ARM", Some(0xd40)) => "Neoverse-V1",
        ("ARM", Some(0xd41)) => "Cortex-A78",
        ("ARM", Some(0xd44)) => "Cortex-X1",
        ("ARM", Some(0xd46)) => "Cortex-A510",
        ("ARM", Some(0xd47)) => "Cortex-A710",
        ("ARM", Some(0xd48)) => "Cortex-X2",
        ("ARM", Some(0xd49)) => "Neoverse-N2",
        ("ARM", Some(0xd4f)) => "Neoverse-V2",
        _ => "",
    };
    match (vendor, core) {
        ("", _) => format!("implementer {implementer} part {part}"),
        (v, "") => format!("{v} part {part}"),
        (v, c) => format!("{v} {c}"),
    }
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
        // The CPU model this machine names, else the architecture.
        let host_cpu = host_device().iter().find(|(k, _)| *k == "cpu");
        let cpu = host_cpu.map_or("x86_64", |(_, v)| v.as_str());
        assert_eq!(b["device"]["cpu"], cpu);
        assert_eq!(b["app_version"]["version"], "2.3.1");
        assert_eq!(b["app_version"]["build_number"], "4512");
        assert_eq!(b["client"]["version"], "0.1.0");
        assert!(b["app_version"].get("primary_locale").is_none());
    }

    #[test]
    fn stored_device_items_win_in_the_device_block() {
        let mut flat = Map::new();
        flat.insert("arch".into(), Value::from("aarch64"));
        flat.insert("device.cpu".into(), Value::from("arm64-v8a"));
        flat.insert("device.os_version".into(), Value::from("14"));
        flat.insert(
            DEVICE_ID_ITEM.into(),
            Value::from("0b8e2f4c-1d2a-4c1b-9e3f-5a6b7c8d9e0f"),
        );
        let b = blocks(&flat);
        assert_eq!(b["device"]["cpu"], "arm64-v8a");
        assert_eq!(b["device"]["os_version"], "14");
        assert_eq!(b["device"]["uuid"], "0b8e2f4c-1d2a-4c1b-9e3f-5a6b7c8d9e0f");
    }

    const X86: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\
model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz\nstepping\t: 7\n\
flags\t\t: fpu vme de\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n\
model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz\n";

    // A Raspberry Pi 4 on a 32-bit kernel: a generic `model name`, the
    // SoC in `Hardware`, and ids that must never be read.
    const PI_32: &str = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 3 (v7l)\n\
BogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n\
Hardware\t: BCM2711\nRevision\t: c03114\nSerial\t\t: 100000002a5b3c4d\n\
Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n";

    // An arm64 phone kernel: no name lines, two kinds of cores.
    const ARM64_BIG_LITTLE: &str = "processor\t: 0\nBogoMIPS\t: 38.40\n\
Features\t: fp asimd evtstrm aes\nCPU implementer\t: 0x41\nCPU architecture: 8\n\
CPU variant\t: 0x1\nCPU part\t: 0xd05\nCPU revision\t: 0\n\n\
processor\t: 1\nCPU implementer\t: 0x41\nCPU part\t: 0xd05\n\n\
processor\t: 6\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n\n\
processor\t: 7\nCPU implementer\t: 0x51\nCPU part\t: 0x804\n";

    // An older arm64 kernel with `Processor` and `Hardware` lines.
    const ARM_OLD: &str = "Processor\t: AArch64 Processor rev 4 (aarch64)\n\
processor\t: 0\nCPU implementer\t: 0x51\nCPU part\t: 0x801\n\n\
Hardware\t: Qualcomm Technologies, Inc MSM8998\n";

    #[test]
    fn cpuinfo_gives_the_model_and_never_an_id() {
        assert_eq!(
            cpu_from_cpuinfo(X86).as_deref(),
            Some("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz")
        );
        let pi = cpu_from_cpuinfo(PI_32).unwrap();
        assert_eq!(pi, "ARMv7 Processor rev 3 (v7l)");
        assert!(!pi.contains("100000002a5b3c4d") && !pi.contains("c03114"));
        assert_eq!(
            cpu_from_cpuinfo(ARM64_BIG_LITTLE).as_deref(),
            Some("ARM Cortex-A55 + ARM Cortex-A76 + Qualcomm part 0x804")
        );
        assert_eq!(
            cpu_from_cpuinfo(ARM_OLD).as_deref(),
            Some("Qualcomm Technologies, Inc MSM8998")
        );
        // Nothing that names a CPU: nothing, not a serial.
        assert_eq!(cpu_from_cpuinfo("Serial\t: 00000000deadbeef\n"), None);
        assert_eq!(cpu_from_cpuinfo(""), None);
        assert_eq!(
            cpu_from_cpuinfo("CPU implementer : 0x99\nCPU part : 0x1\n").as_deref(),
            Some("implementer 0x99 part 0x1")
        );
    }
}
