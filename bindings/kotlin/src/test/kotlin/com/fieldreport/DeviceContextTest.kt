package com.fieldreport

import java.nio.file.Path
import java.time.Duration
import java.util.UUID
import java.util.concurrent.TimeUnit
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.io.TempDir

/**
 * A stand-in with the shape of `android.os.Build` (static fields, a nested
 * `VERSION`), to drive `DeviceContext`'s reflection path on a plain JVM. It is
 * not Android: the real class was not available here.
 */
class FakeBuild {
    class VERSION {
        companion object {
            @JvmField val RELEASE = "14"
        }
    }

    companion object {
        @JvmField val MANUFACTURER = "Google"
        @JvmField val MODEL = "Pixel 8"
        @JvmField val BOARD = "shiba"
        @JvmField val PRODUCT = "shiba"
        @JvmField val BRAND = "google"
        @JvmField val HARDWARE = "shiba"
        @JvmField val SUPPORTED_ABIS = arrayOf("arm64-v8a", "armeabi-v7a")
        @JvmField val TYPE = "user"
        @JvmField val DISPLAY = "AP1A.240405.002"
        @JvmField val ID = "AP1A.240405.002"
        @JvmField val SERIAL = "unknown"
    }
}

@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DeviceContextTest {

    @TempDir
    lateinit var tmp: Path

    @Test
    fun `on a JVM without android_os_Build the system properties are used`() {
        val items = DeviceContext.items()
        assertEquals(System.getProperty("os.name"), items["os_name"], items.toString())
        assertEquals(System.getProperty("os.version"), items["os_version"], items.toString())
        assertEquals(System.getProperty("os.arch"), items["cpu"], items.toString())
        assertEquals(setOf("os_name", "os_version", "cpu"), items.keys)
    }

    @Test
    fun `Build's fields are read by reflection, never its serial`() {
        val items = DeviceContext.items(FakeBuild::class.java.name)
        assertEquals(
            mapOf(
                "os_name" to "Android",
                "os_version" to "14",
                "os_build" to "AP1A.240405.002",
                "build_id" to "AP1A.240405.002",
                "manufacturer" to "Google",
                "model" to "Pixel 8",
                "board" to "shiba",
                "product" to "shiba",
                "brand" to "google",
                "cpu" to "arm64-v8a",
                "build_type" to "user",
            ),
            items,
        )
        assertFalse(items.containsKey("uuid"))
    }

    @Test
    fun `the items reach a delivered record's device block with the per-install id`() {
        val sandbox = SandboxProcess.start(kind = "apptentive")
        try {
            val app = DeviceContext.appInfo(name = "WidgetPro", version = "2.3.1", build = "4512")
            val config = Config(
                outboxDir = tmp.resolve("outbox").toString(),
                apiKey = SandboxProcess.APPTENTIVE_TOKEN,
                app = app,
                apptentive = ApptentiveDestination(baseUrl = sandbox.baseUrl),
            )
            FieldReportClient(config).use { client ->
                val id = client.submit(Feedback(summary = "Which device was this?"))
                val result = client.flush(Duration.ofSeconds(30))
                assertEquals(ReportState.DELIVERED, result.receipts.single().state, result.toString())
                // The stored context has the items as `device.<key>`.
                val context = client.report(id).contextJson
                assertTrue(context.contains("\"device.os_name\""), context)
            }
            val device = sandbox.state()["feedback"][0]["body"]["device"]
            assertEquals(System.getProperty("os.name"), device["os_name"].asText(), device.toString())
            assertEquals(System.getProperty("os.version"), device["os_version"].asText(), device.toString())
            assertEquals(System.getProperty("os.arch"), device["cpu"].asText(), device.toString())
            val uuid = UUID.fromString(device["uuid"].asText())
            assertEquals(4, uuid.version(), device.toString())
            val record = sandbox.state()["feedback"][0]["body"]
            assertEquals("2.3.1", record["app_version"]["version"].asText(), record.toString())
            assertEquals("4512", record["app_version"]["build_number"].asText(), record.toString())
        } finally {
            sandbox.close()
        }
    }

    @Test
    fun `an item the library refuses is InvalidConfig`() {
        val config = Config(
            outboxDir = tmp.resolve("never").toString(),
            apiKey = SandboxProcess.APPTENTIVE_TOKEN,
            app = AppInfo(device = mapOf("uuid" to "a hardware id")),
            apptentive = ApptentiveDestination(baseUrl = "http://127.0.0.1:9"),
        )
        val e = runCatching { FieldReportClient(config) }.exceptionOrNull()
        assertTrue(e is FieldReportException.InvalidConfig, e.toString())
        assertTrue(e!!.message!!.contains("per-install"), e.message)
        assertNull(tmp.toFile().listFiles()?.firstOrNull { it.name == "never" })
    }
}
