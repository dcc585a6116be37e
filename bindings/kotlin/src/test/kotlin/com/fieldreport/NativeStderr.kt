package com.fieldreport

import com.sun.jna.Library
import com.sun.jna.Native
import java.io.File

/**
 * Captures what native code (the Rust library) writes to file descriptor 2
 * while a block runs: System.err does not see it. POSIX only (Linux, macOS).
 */
object NativeStderr {
    private interface LibC : Library {
        fun dup(fd: Int): Int
        fun dup2(from: Int, to: Int): Int
        fun close(fd: Int): Int
        fun creat(path: String, mode: Int): Int
    }

    private val libc: LibC by lazy { Native.load("c", LibC::class.java) }

    /** Runs [block] with fd 2 sent to a file; returns what was written there. */
    fun capture(block: () -> Unit): String {
        val file = File.createTempFile("fieldreport-stderr", ".txt")
        try {
            val saved = libc.dup(2)
            check(saved >= 0) { "dup(2) failed" }
            try {
                val fd = libc.creat(file.path, "600".toInt(8))
                check(fd >= 0) { "creat(${file.path}) failed" }
                check(libc.dup2(fd, 2) == 2) { "dup2 failed" }
                libc.close(fd)
                block()
            } finally {
                libc.dup2(saved, 2)
                libc.close(saved)
            }
            return file.readText()
        } finally {
            file.delete()
        }
    }
}
