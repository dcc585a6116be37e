package com.fieldreport

import com.fasterxml.jackson.databind.JsonNode
import com.fasterxml.jackson.databind.ObjectMapper
import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.time.Duration
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit

/**
 * One of the crate's sandboxes, run as a child process:
 * `fieldreport sandbox --kind KIND --port 0` (Centercode's by default). Port 0 lets the sandbox bind a free port
 * itself (no race with other processes picking the same one); the port is
 * read from the line it prints once it listens, then `GET /_sandbox/state`
 * is polled until it answers.
 *
 * The binary is the `fieldreport` CLI built by `cargo build --features cli`;
 * its path comes from the system property `fieldreport.cli` (set by the
 * pom's Surefire configuration).
 */
class SandboxProcess private constructor(
    private val process: Process,
    private val stderrLog: File,
    /** e.g. `http://127.0.0.1:41234/api/v1` (Centercode), the root for the other kinds */
    val baseUrl: String,
    /** e.g. `http://127.0.0.1:41234` */
    val root: String,
) : AutoCloseable {

    private val http: HttpClient = HttpClient.newBuilder()
        .version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5))
        .build()

    /** The sandbox's record: `{"feedback":[..],"uploads":[..],"requests":[..],"pending_faults":N}`. */
    fun state(): JsonNode {
        val req = HttpRequest.newBuilder(URI.create("$root/_sandbox/state"))
            .timeout(Duration.ofSeconds(10)).GET().build()
        val res = http.send(req, HttpResponse.BodyHandlers.ofString())
        check(res.statusCode() == 200) { "GET /_sandbox/state answered ${res.statusCode()}: ${res.body()}" }
        return JSON.readTree(res.body())
    }

    /** Appends faults to the queue, e.g. `[{"status":503}]`; each API request takes one. */
    fun injectFaults(json: String) {
        val req = HttpRequest.newBuilder(URI.create("$root/_sandbox/faults"))
            .timeout(Duration.ofSeconds(10))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(json)).build()
        val res = http.send(req, HttpResponse.BodyHandlers.ofString())
        check(res.statusCode() in 200..299) { "POST /_sandbox/faults answered ${res.statusCode()}: ${res.body()}" }
    }

    /** What the sandbox wrote on stderr so far (for failure messages). */
    fun stderr(): String = runCatching { stderrLog.readText() }.getOrDefault("")

    override fun close() {
        if (process.isAlive) {
            process.destroy()
            if (!process.waitFor(5, TimeUnit.SECONDS)) {
                process.destroyForcibly()
                process.waitFor(5, TimeUnit.SECONDS)
            }
        }
        Runtime.getRuntime().runCatching { removeShutdownHook(hook) }
        stderrLog.delete()
    }

    private val hook = Thread { process.destroyForcibly() }.also {
        Runtime.getRuntime().addShutdownHook(it)
    }

    companion object {
        val JSON = ObjectMapper()
        const val API_KEY = "sandbox-key"
        const val PROJECT = "WidgetPro"
        const val FEEDBACK_TYPE = "Mobile"

        /** Apptentive's sandbox token (`Authorization: OAuth sandbox-token`). */
        const val APPTENTIVE_TOKEN = "sandbox-token"

        private val URL_LINE = Regex("""listening at (http://127\.0\.0\.1:(\d+)(?:/api/v1)?)\s*$""")

        /** The `fieldreport` CLI binary. */
        fun cliPath(): File {
            val prop = System.getProperty("fieldreport.cli")
                ?: error("system property fieldreport.cli is not set (run through Maven/Surefire, see pom.xml)")
            val f = File(prop)
            check(f.canExecute()) {
                "sandbox binary $f not found or not executable: build it with `cargo build --features cli` " +
                    "(bindings/kotlin/run-tests.sh does)"
            }
            return f
        }

        /** Starts a sandbox of `kind`: `centercode`, `abc` or `apptentive`. */
        fun start(kind: String = "centercode", timeout: Duration = Duration.ofSeconds(20)): SandboxProcess {
            val stderrLog = Files.createTempFile("fieldreport-sandbox", ".stderr").toFile()
            val process = ProcessBuilder(cliPath().path, "sandbox", "--kind", kind, "--port", "0")
                .redirectError(stderrLog)
                .redirectInput(ProcessBuilder.Redirect.from(File("/dev/null")))
                .start()
            try {
                // Read stdout on a daemon thread: it keeps draining the pipe
                // and hands over the lines it sees.
                val lines = LinkedBlockingQueue<String>()
                Thread {
                    runCatching { process.inputStream.bufferedReader().forEachLine { lines.put(it) } }
                }.apply { isDaemon = true; name = "sandbox-stdout"; start() }

                val deadline = System.nanoTime() + timeout.toNanos()
                fun left() = deadline - System.nanoTime()
                var match: MatchResult? = null
                while (match == null) {
                    check(left() > 0) { "sandbox printed no URL in $timeout; stderr: ${stderrLog.readText()}" }
                    val line = lines.poll(minOf(left(), 100_000_000L), TimeUnit.NANOSECONDS)
                    if (line == null) {
                        check(process.isAlive) {
                            "sandbox exited with ${process.exitValue()}; stderr: ${stderrLog.readText()}"
                        }
                        continue
                    }
                    match = URL_LINE.find(line)
                }
                val baseUrl = match.groupValues[1]
                val root = "http://127.0.0.1:${match.groupValues[2]}"
                val sb = SandboxProcess(process, stderrLog, baseUrl, root)
                // Wait until the control endpoint answers.
                var last: Throwable? = null
                while (left() > 0) {
                    try {
                        sb.state()
                        return sb
                    } catch (e: Exception) {
                        last = e
                        Thread.sleep(50)
                    }
                }
                sb.close()
                throw IllegalStateException("sandbox at $root did not answer in $timeout", last)
            } catch (e: Throwable) {
                process.destroyForcibly()
                throw e
            }
        }
    }
}
