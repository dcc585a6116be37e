// Written by hand (not generated). NOT COMPILED: there is no Swift toolchain
// on the project's machines; check it on a Mac before relying on it.

import Foundation
#if canImport(UIKit)
import UIKit
#endif

/// The device items an app passes in `AppInfo.device`, from what the platform
/// tells: on iOS `UIDevice` (system name and version, model) and `uname`'s
/// machine identifier (`iPhone15,2`); on macOS and Linux `ProcessInfo` and
/// `uname`. Never a hardware id: the `uuid` the library reports is its own
/// random per-install UUID.
public enum DeviceContext {
    #if canImport(UIKit)
    /// The device items of this device, under Apptentive's `device` keys.
    /// `UIDevice` belongs to the main actor: call it from there.
    @MainActor
    public static func items() -> [String: String] {
        let device = UIDevice.current
        // On the simulator `uname` names the Mac's CPU; the simulated
        // model is in the environment.
        let model = ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"] ?? machine()
        return clean([
            "os_name": device.systemName,
            "os_version": device.systemVersion,
            "manufacturer": "Apple",
            "product": device.model,
            "model": model,
            "cpu": architecture,
        ])
    }

    /// An `AppInfo` with the app's name, version and build as given, the
    /// user's first preferred language (`en-US`) and `items()`.
    @MainActor
    public static func appInfo(name: String? = nil, version: String? = nil, build: String? = nil) -> AppInfo {
        AppInfo(name: name, version: version, build: build,
                locale: Locale.preferredLanguages.first, device: items())
    }
    #else
    /// The device items of this machine, under Apptentive's `device` keys.
    public static func items() -> [String: String] {
        let info = ProcessInfo.processInfo
        let v = info.operatingSystemVersion
        #if os(macOS)
        let name = "macOS"
        #elseif os(Linux)
        let name = "Linux"
        #else
        let name = "unknown"
        #endif
        return clean([
            "os_name": name,
            "os_version": "\(v.majorVersion).\(v.minorVersion).\(v.patchVersion)",
            "os_build": info.operatingSystemVersionString,
            "cpu": machine() ?? architecture,
        ])
    }

    /// An `AppInfo` with the app's name, version and build as given, the
    /// user's first preferred language (`en-US`) and `items()`.
    public static func appInfo(name: String? = nil, version: String? = nil, build: String? = nil) -> AppInfo {
        AppInfo(name: name, version: version, build: build,
                locale: Locale.preferredLanguages.first, device: items())
    }
    #endif

    /// `uname`'s machine field: `iPhone15,2` on an iPhone, `arm64` or
    /// `x86_64` on a Mac or Linux.
    static func machine() -> String? {
        var u = utsname()
        guard uname(&u) == 0 else { return nil }
        let text = withUnsafeBytes(of: &u.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return text.isEmpty ? nil : text
    }

    static var architecture: String {
        #if arch(arm64)
        return "arm64"
        #elseif arch(x86_64)
        return "x86_64"
        #else
        return "unknown"
        #endif
    }

    /// Drops control characters and blank values (the library refuses
    /// them) and cuts at 256 characters (its limit).
    static func clean(_ items: [String: String?]) -> [String: String] {
        var out: [String: String] = [:]
        for (key, raw) in items {
            guard let raw = raw else { continue }
            let kept = String(String.UnicodeScalarView(
                raw.unicodeScalars.filter { !CharacterSet.controlCharacters.contains($0) }))
            let value = kept.trimmingCharacters(in: .whitespaces)
            guard !value.isEmpty, value != "unknown" else { continue }
            out[key] = String(value.prefix(256))
        }
        return out
    }
}
