package com.fieldreport

import java.io.ByteArrayOutputStream
import java.io.File
import java.io.InputStream
import java.net.HttpURLConnection
import java.net.URL

/**
 * An [HttpTransport] on the platform's own HTTP stack, `java.net.HttpURLConnection`
 * (on Android, the system's; on a JVM, the JDK's). With it the library needs no
 * HTTP or TLS code of its own: the platform does the TLS, with its trust store,
 * proxy settings and network security config.
 *
 * Pass it to `FieldReportClient.openWithTransport(config, HttpUrlConnectionTransport())`.
 * It is the only way to open the Android build (`bindings/android/build-android.sh`),
 * which leaves the library's own HTTP stack out.
 *
 * Every body is sent in fixed-length streaming mode. That streams attachments
 * from disk (never a whole file in memory) and, as important, stops the stack
 * from silently sending a POST again after a failure: a body streamed once
 * cannot be replayed, so a lost answer reaches the library, which decides.
 */
class HttpUrlConnectionTransport : HttpTransport {

    override fun send(request: HttpRequest): HttpResponse {
        val timeout = request.timeoutMs.coerceIn(1UL, Int.MAX_VALUE.toULong()).toInt()
        val conn: HttpURLConnection
        val length: Long?
        // Anything that fails before the connection (and TLS handshake) is
        // up, a missing INTERNET permission included, left nothing behind.
        try {
            conn = URL(request.url).openConnection() as HttpURLConnection
            conn.requestMethod = request.method
            conn.instanceFollowRedirects = false
            conn.useCaches = false
            conn.connectTimeout = timeout
            conn.readTimeout = timeout
            for (h in request.headers) {
                // The stack sets the length itself (from the streaming mode).
                if (!h.name.equals("Content-Length", ignoreCase = true)) {
                    conn.setRequestProperty(h.name, h.value)
                }
            }
            length = when (val body = request.body) {
                is HttpBody.Empty -> null
                is HttpBody.Bytes -> body.data.size.toLong()
                is HttpBody.File -> body.prefix.size + File(body.path).length() + body.suffix.size
            }
            if (length != null) {
                conn.doOutput = true
                conn.setFixedLengthStreamingMode(length)
            }
        } catch (e: Exception) {
            throw TransportException.NotSent("cannot prepare the request: ${e.javaClass.simpleName}: ${e.message}")
        }
        // The read timeout counts per read and writes have none: this
        // watchdog bounds the whole exchange, as the library asks.
        val watchdog = Thread {
            try {
                Thread.sleep(timeout.toLong())
                conn.disconnect()
            } catch (_: InterruptedException) {
            }
        }
        watchdog.isDaemon = true
        watchdog.start()
        try {
            try {
                conn.connect()
            } catch (e: Exception) {
                throw TransportException.NotSent("${e.javaClass.simpleName}: ${e.message}")
            }
            try {
                when (val body = request.body) {
                    is HttpBody.Empty -> {}
                    is HttpBody.Bytes -> conn.outputStream.use { it.write(body.data) }
                    is HttpBody.File -> conn.outputStream.use { out ->
                        out.write(body.prefix)
                        File(body.path).inputStream().use { it.copyTo(out, BUFFER) }
                        out.write(body.suffix)
                    }
                }
                val status = conn.responseCode
                val headers = conn.headerFields
                    .filterKeys { it != null } // the status line
                    .flatMap { (name, values) -> values.map { HttpHeader(name!!, it) } }
                val stream: InputStream? = if (status >= 400) conn.errorStream else conn.inputStream
                val answer = stream?.use { readAtMost(it, MAX_ANSWER) } ?: ByteArray(0)
                return HttpResponse(status.toUShort(), headers, answer)
            } catch (e: Exception) {
                // Sending had begun: the server may have acted on it.
                throw TransportException.Failed("${e.javaClass.simpleName}: ${e.message}")
            }
        } finally {
            watchdog.interrupt()
            conn.disconnect()
        }
    }

    private fun readAtMost(input: InputStream, limit: Int): ByteArray {
        val out = ByteArrayOutputStream()
        val buf = ByteArray(BUFFER)
        while (out.size() < limit) {
            val n = input.read(buf, 0, minOf(buf.size, limit - out.size()))
            if (n < 0) break
            out.write(buf, 0, n)
        }
        return out.toByteArray()
    }

    private fun urlWithoutQuery(url: String) = url.substringBefore('?')

    private companion object {
        const val BUFFER = 64 * 1024
        /** The library reads at most the first MiB of an answer. */
        const val MAX_ANSWER = 1024 * 1024
    }
}
