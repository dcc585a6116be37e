package com.fieldreport

import java.nio.file.Path
import java.time.Duration
import java.util.concurrent.TimeUnit
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.io.TempDir

/**
 * Delivery to Apptentive through the Kotlin bindings: a `Config` naming an
 * `ApptentiveDestination`, against the crate's Apptentive sandbox
 * (`fieldreport sandbox --kind apptentive`, a child process per test).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ApptentiveTest {

    @TempDir
    lateinit var tmp: Path

    private lateinit var sandbox: SandboxProcess

    @BeforeEach
    fun startSandbox() {
        sandbox = SandboxProcess.start(kind = "apptentive")
    }

    @AfterEach
    fun stopSandbox() {
        if (::sandbox.isInitialized) sandbox.close()
    }

    @Test
    fun `feedback is delivered to Apptentive as a record`() {
        val config = Config(
            outboxDir = tmp.resolve("outbox").toString(),
            apiKey = SandboxProcess.APPTENTIVE_TOKEN,
            app = AppInfo(name = "WidgetPro", version = "2.3.1"),
            apptentive = ApptentiveDestination(baseUrl = sandbox.baseUrl, feedbackType = "bug"),
        )
        // The token is the secret: never printed.
        assertFalse(config.toString().contains(SandboxProcess.APPTENTIVE_TOKEN), config.toString())

        FieldReportClient(config).use { client ->
            val id = client.submit(
                Feedback(
                    summary = "Export button does nothing",
                    submitter = "ann@example.com",
                    attachments = listOf(
                        Attachment(elementKey = "log", data = "notes".toByteArray(), fileName = "notes.txt"),
                    ),
                ),
            )
            val result = client.flush(Duration.ofSeconds(30))
            assertEquals(listOf(id), result.receipts.map { it.id }, result.toString())
            val receipt = result.receipts[0]
            assertEquals(ReportState.DELIVERED, receipt.state, receipt.toString())
            assertEquals(0UL, result.pending)

            val status = client.report(id)
            assertEquals(ReportState.DELIVERED, status.state)
            assertEquals(listOf(AttachmentState.UPLOADED), status.attachments.map { it.state })

            val state = sandbox.state()
            assertEquals("apptentive", state["kind"].asText())
            val records = state["feedback"]
            assertEquals(1, records.size(), state.toString())
            val serverKey = receipt.serverKey
            assertNotNull(serverKey, receipt.toString())
            assertEquals(records[0]["id"].asText(), serverKey)
            val body = records[0]["body"]
            assertEquals("bug", body["feedback"]["type"].asText(), body.toString())
            assertTrue(body["feedback"]["feedback"].asText().startsWith("Export button does nothing"), body.toString())
            assertEquals("ann@example.com", body["user"]["email"].asText())
        }
    }
}
