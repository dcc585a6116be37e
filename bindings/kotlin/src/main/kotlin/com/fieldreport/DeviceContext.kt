package com.fieldreport

import java.util.Locale

/**
 * The device items an app passes in [AppInfo.device], read from what the
 * platform tells: on Android `android.os.Build` (manufacturer, model, board,
 * product, brand, the first supported ABI as `cpu`, the build type, the OS
 * release and build), on any other JVM the `os.name`, `os.version` and
 * `os.arch` system properties.
 *
 * `android.os.Build` is read by reflection, so that this file compiles
 * without the Android SDK; that path was tested here against a stand-in
 * class with Build's shape, not on a device. Never read: `Build.SERIAL`,
 * `Build.getSerial()`, or any other hardware id. The device id the library
 * reports (`uuid`) is its own random per-install UUID.
 *
 * ```kotlin
 * val config = Config(
 *     outboxDir = ..., apiKey = ...,
 *     app = DeviceContext.appInfo(name = "WidgetPro", version = "2.3.1", build = "4512"),
 * )
 * ```
 */
object DeviceContext {

    /** The device items of this platform, under Apptentive's `device` keys. */
    fun items(): Map<String, String> = items(ANDROID_BUILD)

    /**
     * An [AppInfo] for this app: its name, version and build as given, the
     * user's locale (`Locale.getDefault()`, e.g. `en-US`) and [items].
     */
    fun appInfo(name: String? = null, version: String? = null, build: String? = null): AppInfo =
        AppInfo(
            name = name,
            version = version,
            build = build,
            locale = Locale.getDefault().toLanguageTag().takeIf { it != "und" },
            device = items(),
        )

    /** [items] from the class named [buildClass]: Android's, or a test's stand-in. */
    internal fun items(buildClass: String): Map<String, String> {
        val build = try {
            Class.forName(buildClass)
        } catch (e: ClassNotFoundException) {
            null
        } catch (e: LinkageError) {
            null
        }
        return if (build != null) android(build) else jvm()
    }

    private const val ANDROID_BUILD = "android.os.Build"

    private fun android(build: Class<*>): Map<String, String> {
        val version = try {
            Class.forName(build.name + "\$VERSION")
        } catch (e: ClassNotFoundException) {
            null
        }
        val abis = staticField(build, "SUPPORTED_ABIS") as? Array<*>
        val cpu = abis?.firstOrNull()?.toString() ?: text(build, "HARDWARE")
        return clean(
            linkedMapOf(
                "os_name" to "Android",
                "os_version" to version?.let { text(it, "RELEASE") },
                "os_build" to text(build, "DISPLAY"),
                "build_id" to text(build, "ID"),
                "manufacturer" to text(build, "MANUFACTURER"),
                "model" to text(build, "MODEL"),
                "board" to text(build, "BOARD"),
                "product" to text(build, "PRODUCT"),
                "brand" to text(build, "BRAND"),
                "cpu" to cpu,
                "build_type" to text(build, "TYPE"),
            ),
        )
    }

    private fun jvm(): Map<String, String> = clean(
        linkedMapOf(
            "os_name" to System.getProperty("os.name"),
            "os_version" to System.getProperty("os.version"),
            "cpu" to System.getProperty("os.arch"),
        ),
    )

    private fun staticField(cls: Class<*>, name: String): Any? = try {
        cls.getField(name).get(null)
    } catch (e: ReflectiveOperationException) {
        null
    } catch (e: SecurityException) {
        null
    }

    private fun text(cls: Class<*>, name: String): String? = staticField(cls, name) as? String

    /**
     * Drops what the library would refuse or what says nothing: blank values,
     * Build's `"unknown"`, control characters; cuts a value at 256 characters.
     */
    private fun clean(items: Map<String, String?>): Map<String, String> =
        items.mapNotNull { (k, v) ->
            val value = v?.filterNot { it.isISOControl() }?.trim()?.take(256)
            if (value.isNullOrEmpty() || value == "unknown") null else k to value
        }.toMap()
}
