package com.fieldreport

import java.io.File
import java.nio.file.Path
import java.security.MessageDigest
import java.time.Duration
import java.time.Instant
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit
import kotlin.random.Random
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.io.TempDir

/**
 * The Kotlin bindings, on the JVM, against the real library (loaded by JNA
 * from `jna.library.path`) and the crate's sandbox server (a child process,
 * one per test).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class FieldReportTest {

    @TempDir
    lateinit var tmp: Path

    private lateinit var sandbox: SandboxProcess

    @BeforeEach
    fun startSandbox() {
        sandbox = SandboxProcess.start()
    }

    @AfterEach
    fun stopSandbox() {
        if (::sandbox.isInitialized) sandbox.close()
    }

    // -----------------------------------------------------------------------
    // helpers
    // -----------------------------------------------------------------------

    private fun config(outbox: String = "outbox", policy: Policy? = null) = Config(
        outboxDir = tmp.resolve(outbox).toString(),
        projectKey = SandboxProcess.PROJECT,
        feedbackTypeKey = SandboxProcess.FEEDBACK_TYPE,
        apiKey = SandboxProcess.API_KEY,
        baseUrl = sandbox.baseUrl,
        app = AppInfo(name = "WidgetPro", version = "2.3.1", build = "4512", locale = "en-US"),
        contextFields = mapOf("app_version" to "AppVersion", "report_kind" to "ReportKind"),
        // Quick retries, so a test that waits out one stays short.
        policy = policy ?: Policy(retryBase = Duration.ofMillis(200), retryMax = Duration.ofSeconds(1)),
    )

    private fun sha256(bytes: ByteArray): String =
        MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }

    private fun randomFile(name: String, size: Int): Pair<File, ByteArray> {
        val bytes = Random(size).nextBytes(size)
        val f = tmp.resolve(name).toFile()
        f.writeBytes(bytes)
        return f to bytes
    }

    /** Collects what the listener hears. */
    private class Recorder : DeliveryListener {
        val events = CopyOnWriteArrayList<Event>()
        val threads = CopyOnWriteArrayList<String>()
        override fun onEvent(event: Event) {
            events.add(event)
            threads.add(Thread.currentThread().name)
        }
    }

    /** Flushes until the report leaves `Queued`/`Created`, or the deadline passes. */
    private fun flushUntilSettled(client: FieldReportClient, id: Long, timeout: Duration): ReportStatus {
        val deadline = Instant.now() + timeout
        while (true) {
            client.flush(Duration.ofSeconds(10))
            val st = client.report(id)
            if (st.state != ReportState.QUEUED && st.state != ReportState.CREATED) return st
            if (Instant.now() > deadline) return st
            Thread.sleep(100)
        }
    }

    // -----------------------------------------------------------------------
    // tests
    // -----------------------------------------------------------------------

    @Test
    fun `version is the crate's`() {
        assertTrue(version().matches(Regex("""\d+\.\d+\.\d+.*""")), version())
    }

    @Test
    fun `submit then flush delivers feedback, fields and byte-identical attachments`() {
        val (shot, shotBytes) = randomFile("screen.png", 300_000)
        val logBytes = "line one\nline two\n".toByteArray()

        FieldReportClient(config()).use { client ->
            val id = client.submit(
                Feedback(
                    summary = "The export button does nothing",
                    description = "Tapped Export twice; nothing happened.",
                    submitter = "tester@example.com",
                    fields = listOf(
                        Field("topic", "23795"),
                        Field("Platform", "\"Android\""),
                        Field("Tags", "[1, 2]"),
                    ),
                    attachments = listOf(
                        Attachment(elementKey = "Screenshot", path = shot.path),
                        Attachment(elementKey = "Log", data = logBytes, fileName = "app.log"),
                    ),
                ),
            )
            // The file was copied into the outbox at submit: the app may delete it.
            assertTrue(shot.delete())

            val queued = client.report(id)
            assertEquals(ReportState.QUEUED, queued.state)
            assertEquals(ReportKind.FEEDBACK, queued.kind)
            assertEquals(2, queued.attachments.size)

            val result = client.flush(Duration.ofSeconds(30))
            assertNull(result.stopped, "flush stopped: ${result.stopped}")
            assertEquals(1, result.receipts.size, result.toString())
            val receipt = result.receipts.single()
            assertEquals(id, receipt.id)
            assertEquals(ReportState.DELIVERED, receipt.state, receipt.toString())
            assertEquals("BUG-0001", receipt.serverKey)
            assertNotNull(receipt.serverUrl)
            assertNull(receipt.error)
            assertTrue(receipt.rejectedAttachments.isEmpty())
            assertEquals(0UL, result.pending)
            assertEquals(0UL, result.dead)

            val status = client.report(id)
            assertEquals(ReportState.DELIVERED, status.state)
            assertEquals("BUG-0001", status.serverKey)
            assertTrue(status.attachments.all { it.state == AttachmentState.UPLOADED }, status.toString())
            val shotStatus = status.attachments.single { it.elementKey == "Screenshot" }
            assertEquals(sha256(shotBytes), shotStatus.sha256)
            assertEquals(shotBytes.size.toULong(), shotStatus.size)
            assertEquals("screen.png", shotStatus.fileName)
        }

        val state = sandbox.state()
        val feedback = state["feedback"]
        assertEquals(1, feedback.size(), state.toString())
        val created = feedback[0]
        assertEquals("BUG-0001", created["key"].asText())
        val body = created["body"]
        assertEquals("The export button does nothing", body["summary"].asText())
        assertEquals("Tapped Export twice; nothing happened.", body["description"].asText())
        assertEquals("tester@example.com", body["submitter"].asText())
        assertEquals(23795, body["topic"].asInt())
        assertEquals("Android", body["Platform"].asText())
        assertEquals(listOf(1, 2), body["Tags"].map { it.asInt() })
        // Context items under the configured field names.
        assertEquals("2.3.1", body["AppVersion"].asText(), body.toString())
        assertEquals("feedback", body["ReportKind"].asText().lowercase(), body.toString())

        val uploads = state["uploads"].associateBy { it["element_key"].asText() }
        assertEquals(setOf("Screenshot", "Log"), uploads.keys, state.toString())
        val shotUp = uploads.getValue("Screenshot")
        assertEquals("BUG-0001", shotUp["feedback_key"].asText())
        assertEquals("screen.png", shotUp["file_name"].asText())
        assertEquals(shotBytes.size.toLong(), shotUp["size"].asLong())
        assertEquals(sha256(shotBytes), shotUp["sha256_hex"].asText())
        val logUp = uploads.getValue("Log")
        assertEquals("app.log", logUp["file_name"].asText())
        assertEquals(sha256(logBytes), logUp["sha256_hex"].asText())
    }

    @Test
    fun `the listener hears Delivered`() {
        FieldReportClient(config()).use { client ->
            val rec = Recorder()
            client.setListener(rec)
            val id = client.submit(Feedback(summary = "Listener check"))
            client.flush(Duration.ofSeconds(30))

            val delivered = rec.events.filterIsInstance<Event.Delivered>()
            assertEquals(1, delivered.size, rec.events.toString())
            val receipt = delivered.single().receipt
            assertEquals(id, receipt.id)
            assertEquals(ReportState.DELIVERED, receipt.state)
            assertEquals("BUG-0001", receipt.serverKey)
            // Called on the thread that flushed.
            assertEquals(Thread.currentThread().name, rec.threads.single())

            // Removing the listener: the next delivery is not heard.
            client.setListener(null)
            client.submit(Feedback(summary = "Unheard"))
            client.flush(Duration.ofSeconds(30))
            assertEquals(1, rec.events.size, rec.events.toString())
        }
    }

    @Test
    fun `a multi-MB upload reports progress ending at its size`() {
        FieldReportClient(config()).use { client ->
            val size = 3 * 1024 * 1024
            val (big, _) = randomFile("big.bin", size)
            val rec = Recorder()
            client.setListener(rec)
            val id = client.submit(
                Feedback(summary = "A big upload", attachments = listOf(Attachment(elementKey = "Screenshot", path = big.path))),
            )
            client.flush(Duration.ofSeconds(30))
            val progress = rec.events.filterIsInstance<Event.Progress>()
            assertTrue(progress.size >= 2, rec.events.toString())
            assertTrue(progress.all { it.id == id && it.fileName == "big.bin" && it.totalBytes == size.toULong() }, progress.toString())
            assertEquals(0UL, progress.first().sentBytes)
            assertEquals(size.toULong(), progress.last().sentBytes)
            val sent = progress.map { it.sentBytes }
            assertEquals(sent.sorted().distinct(), sent)
            // Heard before the delivery it belongs to.
            assertTrue(rec.events.indexOfLast { it is Event.Progress } < rec.events.indexOfFirst { it is Event.Delivered })
        }
    }

    @Test
    fun `a listener that throws does not break delivery and is reported in one line`() {
        FieldReportClient(config()).use { client ->
            val heard = CopyOnWriteArrayList<Event>()
            client.setListener(object : DeliveryListener {
                override fun onEvent(event: Event) {
                    heard.add(event)
                    throw IllegalStateException("listener bug")
                }
            })
            val stderr = NativeStderr.capture {
                val id = client.submit(Feedback(summary = "Thrown at"))
                val r = client.flush(Duration.ofSeconds(30))
                assertEquals(ReportState.DELIVERED, r.receipts.single().state)
                assertEquals(ReportState.DELIVERED, client.report(id).state)
                // The listener stays set: it hears the next delivery too.
                client.submit(Feedback(summary = "Thrown at again"))
                assertEquals(ReportState.DELIVERED, client.flush(Duration.ofSeconds(30)).receipts.single().state)

                // The exception the interface declares takes the same path.
                client.setListener(object : DeliveryListener {
                    override fun onEvent(event: Event) = throw ListenerException.Failed("declined")
                })
                client.submit(Feedback(summary = "Declined"))
                assertEquals(ReportState.DELIVERED, client.flush(Duration.ofSeconds(30)).receipts.single().state)
            }
            assertEquals(2, heard.count { it is Event.Delivered }, heard.toString())

            // One line per listener, its first exception only; no Rust
            // panic message, no backtrace, no JVM stack trace.
            val lines = stderr.lines().filter { it.isNotBlank() }
            assertEquals(
                listOf(
                    "fieldreport: the DeliveryListener threw java.lang.IllegalStateException: listener bug; " +
                        "delivery goes on (later exceptions of this listener are not shown)",
                ),
                lines.filter { "listener bug" in it },
                stderr,
            )
            assertEquals(1, lines.count { "DeliveryListener threw" in it && "declined" in it }, stderr)
            assertFalse("panicked" in stderr, stderr)
            assertFalse("backtrace" in stderr, stderr)
            assertFalse("\tat " in stderr, stderr)
        }
    }

    @Test
    fun `a 503 gives a Failed event and the retry delivers`() {
        sandbox.injectFaults("""[{"status":503}]""")
        FieldReportClient(config()).use { client ->
            val rec = Recorder()
            client.setListener(rec)
            val id = client.submit(Feedback(summary = "Will meet a 503"))
            val before = Instant.now()

            val first = client.flush(Duration.ofSeconds(30))
            val receipt = first.receipts.single()
            assertEquals(ReportState.QUEUED, receipt.state, receipt.toString())
            assertEquals(503.toUShort(), receipt.error?.status)
            assertEquals(1UL, first.pending)

            val failed = rec.events.filterIsInstance<Event.Failed>().single()
            assertEquals(id, failed.id)
            assertEquals(503.toUShort(), failed.error.status)
            assertFalse(failed.retryAt.isBefore(before), "retry_at ${failed.retryAt} is before $before")

            val stats = client.stats()
            assertEquals(1UL, stats.pending)
            assertEquals(503.toUShort(), stats.lastError?.status)
            assertNotNull(stats.nextAttemptAt)
            assertEquals(1u, client.report(id).attempts)

            // The fault was used up; the retry (due after ~200 ms) delivers.
            val settled = flushUntilSettled(client, id, Duration.ofSeconds(20))
            assertEquals(ReportState.DELIVERED, settled.state, settled.toString())
            assertEquals("BUG-0001", settled.serverKey)
            assertTrue(rec.events.any { it is Event.Delivered }, rec.events.toString())
        }
        val statuses = sandbox.state()["requests"].map { it["status"].asInt() }
        assertEquals(503, statuses.first(), statuses.toString())
        assertTrue(201 in statuses, statuses.toString())
    }

    @Test
    fun `a 422 gives a Dead event and retry puts it back`() {
        sandbox.injectFaults("""[{"status":422}]""")
        FieldReportClient(config()).use { client ->
            val rec = Recorder()
            client.setListener(rec)
            val id = client.submit(Feedback(summary = "Will meet a 422"))

            val r = client.flush(Duration.ofSeconds(30))
            val receipt = r.receipts.single()
            assertEquals(ReportState.DEAD, receipt.state, receipt.toString())
            assertEquals(422.toUShort(), receipt.error?.status)
            assertEquals(1UL, r.dead)

            val dead = rec.events.filterIsInstance<Event.Dead>().single()
            assertEquals(id, dead.id)
            assertEquals(422.toUShort(), dead.error.status)
            assertTrue(dead.error.message.isNotBlank())
            assertTrue(rec.events.none { it is Event.Delivered })

            val stats = client.stats()
            assertEquals(1UL, stats.dead)
            assertEquals(0UL, stats.pending)
            val listed = client.reports(ReportFilter(states = listOf(ReportState.DEAD)))
            assertEquals(listOf(id), listed.map { it.id })

            // Back in the queue: the sandbox now accepts it.
            client.retry(id)
            val again = client.flush(Duration.ofSeconds(30)).receipts.single()
            assertEquals(ReportState.DELIVERED, again.state, again.toString())
            assertEquals("BUG-0001", again.serverKey)
        }
    }

    @Test
    fun `errors arrive as FieldReportException subclasses`() {
        // Bad config: no base URL and no company.
        val noServer = config().copy(baseUrl = null, company = null)
        val e1 = assertThrows(FieldReportException.InvalidConfig::class.java) { FieldReportClient(noServer) }
        assertTrue(e1.reason.isNotBlank())
        // Bad config: clear-text HTTP to a host that is not loopback.
        assertThrows(FieldReportException.InvalidConfig::class.java) {
            FieldReportClient(config().copy(baseUrl = "http://203.0.113.7/api/v1"))
        }
        // Bad config: a policy the library refuses.
        assertThrows(FieldReportException.InvalidConfig::class.java) {
            FieldReportClient(config(policy = Policy(maxReports = 0u)))
        }

        FieldReportClient(config()).use { client ->
            // Empty summary.
            val e2 = assertThrows(FieldReportException.InvalidInput::class.java) {
                client.submit(Feedback(summary = "   "))
            }
            assertTrue(e2.reason.contains("summary"), e2.reason)
            // A field value that is not JSON.
            assertThrows(FieldReportException.InvalidInput::class.java) {
                client.submit(Feedback(summary = "x", fields = listOf(Field("topic", "not json"))))
            }
            // A missing attachment file.
            val missing = tmp.resolve("does-not-exist.png").toString()
            val e3 = assertThrows(FieldReportException.AttachmentUnreadable::class.java) {
                client.submit(
                    Feedback(summary = "x", attachments = listOf(Attachment(elementKey = "Screenshot", path = missing))),
                )
            }
            assertTrue(e3.reason.isNotBlank())
            // An unknown id.
            val e4 = assertThrows(FieldReportException.NotFound::class.java) { client.report(424242L) }
            assertEquals(424242L, e4.id)
            // Retrying a report that is not dead.
            val id = client.submit(Feedback(summary = "queued"))
            assertThrows(FieldReportException.InvalidState::class.java) { client.retry(id) }

            // They are ordinary Kotlin exceptions, with the Rust Display text.
            val any: Exception = assertThrows(FieldReportException::class.java) { client.submit(Feedback(summary = "")) }
            assertTrue(any.toString().isNotBlank())

            // Nothing refused reached the outbox.
            assertEquals(1UL, client.stats().pending)
        }
        assertEquals(0, sandbox.state()["requests"].size(), "no network call was made")
    }

    @Test
    fun `the API key never shows when a Config is printed`() {
        val cfg = config().copy(apiKey = "s3cr3t-key-0123456789")
        val text = cfg.toString()
        assertTrue(text.isNotBlank())
        assertFalse(text.contains("s3cr3t-key-0123456789"), text)
    }

    @Test
    fun `a crash report is delivered gzip-compressed to the crash element`() {
        val log = buildString {
            append("\n")
            append("panic: index out of range [3] with length 3\n")
            repeat(2000) { append("  at com.example.Widget.frame$it(Widget.kt:$it)\n") }
        }
        FieldReportClient(config()).use { client ->
            val id = client.submitCrash(CrashReport(text = log, fields = listOf(Field("topic", "1"))))
            val st = client.report(id)
            assertEquals(ReportKind.CRASH, st.kind)
            // The summary defaults to the log's first meaningful line.
            assertTrue(st.summary.contains("index out of range"), st.summary)

            val receipt = client.flush(Duration.ofSeconds(30)).receipts.single()
            assertEquals(ReportState.DELIVERED, receipt.state, receipt.toString())
            assertEquals("BUG-0001", receipt.serverKey)

            val att = client.report(id).attachments.single()
            assertEquals("CrashLog", att.elementKey)
            assertTrue(att.fileName.endsWith(".gz"), att.fileName)
            assertTrue(att.size < log.length.toULong(), "compressed ${att.size} vs ${log.length}")

            val up = sandbox.state()["uploads"].single()
            assertEquals("CrashLog", up["element_key"].asText())
            assertEquals(att.fileName, up["file_name"].asText())
            assertEquals(att.sha256, up["sha256_hex"].asText())
            assertEquals(att.size.toLong(), up["size"].asLong())
        }
        val body = sandbox.state()["feedback"].single()["body"]
        assertTrue(body["summary"].asText().contains("index out of range"), body.toString())
        assertEquals("crash", body["ReportKind"].asText().lowercase(), body.toString())

        // From a file, streamed.
        val logFile = tmp.resolve("crash.txt").toFile().apply { writeText("fatal: out of memory\n") }
        FieldReportClient(config("outbox2")).use { client ->
            val id = client.submitCrash(CrashReport(path = logFile.path, fileName = "oom.log"))
            assertEquals(ReportState.DELIVERED, client.flush(Duration.ofSeconds(30)).receipts.single().state)
            assertEquals("oom.log.gz", client.report(id).attachments.single().fileName)
        }
    }

    @Test
    fun `submitMany stores a batch in order, all or nothing, and delivers it`() {
        val logBytes = "batch log\n".repeat(100).toByteArray()
        val files = tmp.resolve("outbox").resolve("files").toFile()
        fun outbox(client: FieldReportClient) =
            client.reports(ReportFilter()) to files.list()!!.sorted()

        FieldReportClient(config()).use { client ->
            val ids = client.submitMany(
                listOf(
                    Submission.Feedback(
                        Feedback(
                            summary = "batch zero",
                            attachments = listOf(Attachment(elementKey = "Log", data = logBytes, fileName = "batch.log")),
                        ),
                    ),
                    Submission.Crash(CrashReport(text = "panic: batch one\nat Main.kt:1")),
                    Submission.Feedback(Feedback(summary = "batch two", fields = listOf(Field("topic", "23795")))),
                ),
            )
            // Local ids in the order given.
            assertEquals(3, ids.size, ids.toString())
            assertEquals(ids.sorted(), ids)
            assertEquals(3, ids.toSet().size, ids.toString())
            assertEquals(
                listOf(ReportKind.FEEDBACK, ReportKind.CRASH, ReportKind.FEEDBACK),
                ids.map { client.report(it).kind },
            )
            assertEquals(3UL, client.stats().pending)
            // An empty batch stores nothing.
            val settled = outbox(client)
            assertEquals(emptyList<Long>(), client.submitMany(emptyList()))
            assertEquals(settled, outbox(client))

            // One bad item: its own error, naming it; nothing of the batch
            // stays (not even the staged copy of item 0's attachment).
            val good = Submission.Feedback(
                Feedback(
                    summary = "fine on its own",
                    attachments = listOf(Attachment(elementKey = "Log", data = logBytes, fileName = "good.log")),
                ),
            )
            val e1 = assertThrows(FieldReportException.InvalidInput::class.java) {
                client.submitMany(listOf(good, Submission.Feedback(Feedback(summary = "   ")), good))
            }
            assertTrue(e1.reason.startsWith("batch item 1: "), e1.reason)
            assertEquals(settled, outbox(client))
            val missing = tmp.resolve("gone.log").toString()
            val e2 = assertThrows(FieldReportException.AttachmentUnreadable::class.java) {
                client.submitMany(listOf(good, good, Submission.Crash(CrashReport(path = missing))))
            }
            assertTrue(e2.reason.startsWith("batch item 2: "), e2.reason)
            assertTrue(e2.name.contains("gone.log"), e2.name)
            assertEquals(settled, outbox(client))
            // Refused while converting the record (a field that is not JSON).
            val e3 = assertThrows(FieldReportException.InvalidInput::class.java) {
                client.submitMany(listOf(Submission.Feedback(Feedback(summary = "x", fields = listOf(Field("t", "not json"))))))
            }
            assertTrue(e3.reason.startsWith("batch item 0: "), e3.reason)
            assertEquals(settled, outbox(client))
            assertEquals(0, sandbox.state()["requests"].size(), "submitting made no network call")

            // Delivered like single submits, oldest first.
            val r = client.flush(Duration.ofSeconds(30))
            assertEquals(ids, r.receipts.map { it.id })
            assertTrue(r.receipts.all { it.state == ReportState.DELIVERED }, r.toString())
        }
        val state = sandbox.state()
        val bodies = state["feedback"].map { it["body"] }
        assertEquals(listOf("batch zero", "panic: batch one", "batch two"), bodies.map { it["summary"].asText() })
        assertEquals(23795, bodies[2]["topic"].asInt())
        val uploads = state["uploads"].associateBy { it["file_name"].asText() }
        assertEquals(setOf("batch.log", "crash.log.gz"), uploads.keys, state.toString())
        assertEquals(sha256(logBytes), uploads.getValue("batch.log")["sha256_hex"].asText())
        assertEquals("CrashLog", uploads.getValue("crash.log.gz")["element_key"].asText())

        // A batch larger than maxReports is refused as a whole.
        FieldReportClient(config("capped", policy = Policy(maxReports = 2u))).use { client ->
            val batch = (0 until 3).map { Submission.Feedback(Feedback(summary = "r$it")) }
            val e = assertThrows(FieldReportException.OutboxFull::class.java) { client.submitMany(batch) }
            assertTrue(e.reason.isNotBlank())
            assertEquals(0UL, client.stats().pending)
            assertEquals(2, client.submitMany(batch.take(2)).size)
        }
    }

    @Test
    fun `stats follow consent and delivery`() {
        FieldReportClient(config()).use { client ->
            val empty = client.stats()
            assertEquals(0UL, empty.pending)
            assertEquals(0UL, empty.delivered)
            assertTrue(empty.consent)
            assertFalse(empty.pausedForAuth)
            assertNull(empty.oldestPendingAgeSecs)

            client.setConsent(false)
            val a = client.submit(Feedback(summary = "first"))
            val b = client.submit(Feedback(summary = "second", attachments = listOf(
                Attachment(elementKey = "Log", data = ByteArray(4096) { it.toByte() }, fileName = "x.bin"),
            )))
            assertTrue(b > a)
            val held = client.flush(Duration.ofSeconds(10))
            assertTrue(held.receipts.isEmpty())
            assertNotNull(held.stopped, "a flush without consent says why it stopped")
            val s1 = client.stats()
            assertFalse(s1.consent)
            assertEquals(2UL, s1.pending)
            assertTrue(s1.bytes >= 4096UL, s1.toString())
            assertNotNull(s1.oldestPendingAgeSecs)
            assertEquals(0, sandbox.state()["requests"].size())

            // Offline: nothing is sent either.
            client.setConsent(true)
            client.setOnline(false)
            assertTrue(client.flush(Duration.ofSeconds(10)).receipts.isEmpty())
            assertEquals(0, sandbox.state()["requests"].size())

            client.setOnline(true)
            val r = client.flush(Duration.ofSeconds(30))
            assertEquals(listOf(ReportState.DELIVERED, ReportState.DELIVERED), r.receipts.map { it.state })
            val s2 = client.stats()
            assertTrue(s2.consent)
            assertEquals(0UL, s2.pending)
            assertEquals(2UL, s2.delivered)
            assertEquals(0UL, s2.dead)
            assertNull(s2.lastError)
            // Oldest first: the first submitted got the first key.
            assertEquals("BUG-0001", client.report(a).serverKey)
            assertEquals("BUG-0002", client.report(b).serverKey)
        }
        // Fields of both reports arrived.
        assertEquals(listOf("first", "second"), sandbox.state()["feedback"].map { it["body"]["summary"].asText() })
    }

    @Test
    fun `the background sender delivers without an explicit flush`() {
        val policy = Policy(senderInterval = Duration.ofMillis(200), retryBase = Duration.ofMillis(200))
        FieldReportClient(config(policy = policy)).use { client ->
            val rec = Recorder()
            client.setListener(rec)
            client.startSender()
            val id = client.submit(Feedback(summary = "Sent in the background"))
            val deadline = Instant.now() + Duration.ofSeconds(30)
            while (rec.events.none { it is Event.Delivered } && Instant.now() < deadline) Thread.sleep(50)
            val delivered = rec.events.filterIsInstance<Event.Delivered>().single()
            assertEquals(id, delivered.receipt.id)
            assertTrue(rec.threads.none { it == Thread.currentThread().name })
            client.stopSender()
        }
    }

    @Test
    fun `use closes the client and the outbox reopens`() {
        val cfg = config()
        val client = FieldReportClient(cfg)
        val id = client.use { it.submit(Feedback(summary = "Survives the close")) }
        assertTrue(client.uniffiIsDestroyed)
        // The Kotlin object is gone: further calls fail on the Kotlin side.
        assertThrows(IllegalStateException::class.java) { client.stats() }

        // The report is durable; a new client on the same outbox delivers it.
        FieldReportClient(cfg).use { again ->
            assertEquals(ReportState.QUEUED, again.report(id).state)
            val r = again.flush(Duration.ofSeconds(30))
            assertEquals(ReportState.DELIVERED, r.receipts.single().state)
        }
        assertEquals(1, sandbox.state()["feedback"].size())
    }

    @Test
    fun `shutdown refuses further calls with Closed`() {
        FieldReportClient(config()).use { client ->
            client.submit(Feedback(summary = "before shutdown"))
            // The Rust-side close (the UDL's `close`, renamed `shutdown` in
            // Kotlin because AutoCloseable.close() frees the object).
            client.shutdown()
            assertThrows(FieldReportException.Closed::class.java) { client.submit(Feedback(summary = "after")) }
            assertThrows(FieldReportException.Closed::class.java) { client.flush(Duration.ofSeconds(1)) }
        }
    }

    // -----------------------------------------------------------------------
    // the platform's HTTP stack (HttpUrlConnectionTransport)
    // -----------------------------------------------------------------------

    /** Counts what goes through the app's transport. */
    private class Counting(val inner: HttpTransport) : HttpTransport {
        val requests = CopyOnWriteArrayList<HttpRequest>()
        override fun send(request: HttpRequest): HttpResponse {
            requests.add(request)
            return inner.send(request)
        }
    }

    @Test
    fun `reports and attachments go through HttpURLConnection`() {
        val (shot, shotBytes) = randomFile("screen.png", 300_000)
        val transport = Counting(HttpUrlConnectionTransport())
        FieldReportClient.openWithTransport(config(), transport).use { client ->
            val id = client.submit(
                Feedback(
                    summary = "Through the platform's HTTP stack",
                    attachments = listOf(Attachment(elementKey = "Screenshot", path = shot.path)),
                ),
            )
            val result = client.flush(Duration.ofSeconds(30))
            assertEquals(ReportState.DELIVERED, result.receipts.single().state, result.toString())
            assertEquals(ReportState.DELIVERED, client.report(id).state)
        }
        val state = sandbox.state()
        assertEquals("Through the platform's HTTP stack", state["feedback"][0]["body"]["summary"].asText())
        val upload = state["uploads"].single()
        assertEquals(sha256(shotBytes), upload["sha256_hex"].asText())
        assertEquals("screen.png", upload["file_name"].asText())
        // Every request went through the transport; the attachment as a file.
        assertEquals(state["requests"].size(), transport.requests.size)
        assertEquals(2, transport.requests.size)
        assertTrue(transport.requests[1].body is HttpBody.File, transport.requests[1].body.toString())
    }

    @Test
    fun `an answer lost after sending is not silently re-posted by the platform`() {
        // The sandbox creates the feedback, then drops the connection. The
        // transport must report Failed (in doubt), not post again itself:
        // the library resends once, without a lookup, and counts it.
        sandbox.injectFaults("""[{"act_then_drop":true}]""")
        FieldReportClient.openWithTransport(config(), HttpUrlConnectionTransport()).use { client ->
            val id = client.submit(Feedback(summary = "answer lost"))
            val first = client.flush(Duration.ofSeconds(30))
            assertEquals(ReportState.QUEUED, first.receipts.single().state, first.toString())
            assertEquals(1, sandbox.state()["feedback"].size(), "one create so far")
            val settled = flushUntilSettled(client, id, Duration.ofSeconds(30))
            assertEquals(ReportState.DELIVERED, settled.state, settled.toString())
            assertEquals(1UL, client.stats().ambiguousResends)
        }
        assertEquals(2, sandbox.state()["feedback"].size())
    }

    @Test
    fun `a refused connection is NotSent and told without the API key`() {
        // The transport's own verdict, then what the library makes of it.
        val request = HttpRequest(
            method = "POST",
            url = "http://127.0.0.1:1/api/v1/x?apiKey=${SandboxProcess.API_KEY}",
            headers = emptyList(),
            body = HttpBody.Bytes("{}".toByteArray()),
            timeoutMs = 5_000UL,
        )
        assertThrows(TransportException.NotSent::class.java) { HttpUrlConnectionTransport().send(request) }
        // Printing a request leaves the URL's query, and so the key, out.
        assertFalse(request.toString().contains(SandboxProcess.API_KEY), request.toString())
        assertTrue(request.toString().contains("127.0.0.1:1/api/v1/x"), request.toString())

        val cfg = config().copy(baseUrl = "http://127.0.0.1:1/api/v1")
        FieldReportClient.openWithTransport(cfg, HttpUrlConnectionTransport()).use { client ->
            val id = client.submit(Feedback(summary = "nowhere to go"))
            client.flush(Duration.ofSeconds(10))
            val status = client.report(id)
            assertEquals(ReportState.QUEUED, status.state)
            val message = status.lastError?.message ?: ""
            assertTrue(message.contains("ConnectException"), message)
            assertFalse(message.contains(SandboxProcess.API_KEY), message)
            assertEquals(0UL, client.stats().ambiguousResends)
        }
    }
}
