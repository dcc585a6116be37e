// XCTest for the Swift bindings, against the crate's sandbox server.
//
// UNTESTED: written for `swift test` on a Mac (or an iOS simulator via
// Xcode) and never compiled or run: the project's machines have no Swift
// toolchain. See README.md.
//
// Start a sandbox, then run the tests with its URL:
//
//   cargo run --features cli -- sandbox --port 8480 &
//   FIELDREPORT_SANDBOX_URL=http://127.0.0.1:8480/api/v1 swift test
//
// Without FIELDREPORT_SANDBOX_URL the tests that need a server are skipped.
// The sandbox is shared by all tests (and by earlier runs), so server keys
// are only checked for their shape (`BUG-0007`) and looked up in the
// sandbox's record, and each test that injects a fault clears the queue first.

import FieldReport
import Foundation
import XCTest

final class FieldReportTests: XCTestCase {
    static let apiKey = "sandbox-key"
    static let project = "WidgetPro"
    static let feedbackType = "Mobile"

    var outbox: URL!

    override func setUpWithError() throws {
        outbox = FileManager.default.temporaryDirectory
            .appendingPathComponent("fieldreport-tests-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws {
        if let outbox { try? FileManager.default.removeItem(at: outbox) }
    }

    // MARK: - helpers

    /// The sandbox's API base URL, e.g. `http://127.0.0.1:8480/api/v1`.
    func sandboxURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["FIELDREPORT_SANDBOX_URL"], !url.isEmpty else {
            throw XCTSkip("FIELDREPORT_SANDBOX_URL is not set (start `fieldreport sandbox --port 8480`)")
        }
        return url
    }

    /// `http://127.0.0.1:8480`: where `/_sandbox/...` lives.
    func sandboxRoot() throws -> String {
        let base = try sandboxURL()
        guard base.hasSuffix("/api/v1") else { return base }
        return String(base.dropLast("/api/v1".count))
    }

    func config(baseUrl: String) -> Config {
        Config(
            outboxDir: outbox.path,
            projectKey: Self.project,
            feedbackTypeKey: Self.feedbackType,
            apiKey: Self.apiKey,
            baseUrl: baseUrl,
            app: AppInfo(name: "WidgetPro", version: "2.3.1", build: "4512", locale: "en-US"),
            policy: Policy(retryBase: 0.2, retryMax: 1.0)
        )
    }

    func client() throws -> FieldReportClient {
        try FieldReportClient(config: config(baseUrl: try sandboxURL()))
    }

    /// A control request to the sandbox; returns the parsed JSON body.
    @discardableResult
    func control(_ method: String, _ path: String, body: String? = nil) throws -> [String: Any] {
        var req = URLRequest(url: URL(string: try sandboxRoot() + path)!)
        req.httpMethod = method
        if let body {
            req.httpBody = body.data(using: .utf8)
            req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        // The completion handler is @Sendable: hand the result over in a box.
        final class Box: @unchecked Sendable { var result: Result<Data, Error> = .failure(URLError(.timedOut)) }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: req) { data, response, error in
            if let error {
                box.result = .failure(error)
            } else if let http = response as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
                box.result = .failure(URLError(.badServerResponse))
            } else {
                box.result = .success(data ?? Data())
            }
            done.signal()
        }.resume()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success, "\(method) \(path) timed out")
        let data = try box.result.get()
        if data.isEmpty { return [:] }
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    func sandboxFeedback(key: String) throws -> [String: Any]? {
        let state = try control("GET", "/_sandbox/state")
        let feedback = state["feedback"] as? [[String: Any]] ?? []
        return feedback.first { $0["key"] as? String == key }
    }

    func sandboxUploads(key: String) throws -> [[String: Any]] {
        let state = try control("GET", "/_sandbox/state")
        let uploads = state["uploads"] as? [[String: Any]] ?? []
        return uploads.filter { $0["feedback_key"] as? String == key }
    }

    func assertServerKey(_ key: String?, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotNil(key, file: file, line: line)
        XCTAssertNotNil(key?.range(of: #"^BUG-\d{4,}$"#, options: .regularExpression), "key \(key ?? "nil")",
                        file: file, line: line)
    }

    /// Collects what the listener hears (called on the flushing thread).
    final class Recorder: DeliveryListener, @unchecked Sendable {
        private let lock = NSLock()
        private var _events: [Event] = []
        var events: [Event] { lock.lock(); defer { lock.unlock() }; return _events }
        func onEvent(event: Event) { lock.lock(); _events.append(event); lock.unlock() }
    }

    // MARK: - tests

    func testVersion() {
        XCTAssertFalse(version().isEmpty)
    }

    func testSubmitFlushDelivers() throws {
        let shot = Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        let shotURL = outbox.deletingLastPathComponent().appendingPathComponent("screen-\(UUID().uuidString).png")
        try shot.write(to: shotURL)
        defer { try? FileManager.default.removeItem(at: shotURL) }

        let c = try client()
        defer { c.close() }
        let id = try c.submit(feedback: Feedback(
            summary: "The export button does nothing",
            description: "Tapped Export twice.",
            submitter: "tester@example.com",
            fields: [Field(name: "topic", jsonValue: "23795")],
            attachments: [
                Attachment(elementKey: "Screenshot", path: shotURL.path),
                Attachment(elementKey: "Log", data: Data("line one\n".utf8), fileName: "app.log"),
            ]
        ))
        XCTAssertEqual(try c.report(id: id).state, .queued)

        let result = try c.flush(budget: 30)
        XCTAssertNil(result.stopped)
        XCTAssertEqual(result.receipts.count, 1)
        let receipt = try XCTUnwrap(result.receipts.first)
        XCTAssertEqual(receipt.id, id)
        XCTAssertEqual(receipt.state, .delivered)
        assertServerKey(receipt.serverKey)
        XCTAssertNil(receipt.error)

        let status = try c.report(id: id)
        XCTAssertEqual(status.state, .delivered)
        XCTAssertTrue(status.attachments.allSatisfy { $0.state == .uploaded })

        // What the server got: the fields, and the attachment byte for byte.
        let key = try XCTUnwrap(receipt.serverKey)
        let created = try XCTUnwrap(try sandboxFeedback(key: key))
        let body = try XCTUnwrap(created["body"] as? [String: Any])
        XCTAssertEqual(body["summary"] as? String, "The export button does nothing")
        XCTAssertEqual(body["topic"] as? Int, 23795)
        let uploads = try sandboxUploads(key: key)
        XCTAssertEqual(uploads.count, 2)
        let shotStatus = try XCTUnwrap(status.attachments.first { $0.elementKey == "Screenshot" })
        let shotUpload = try XCTUnwrap(uploads.first { $0["element_key"] as? String == "Screenshot" })
        XCTAssertEqual(shotUpload["sha256_hex"] as? String, shotStatus.sha256)
        XCTAssertEqual((shotUpload["size"] as? NSNumber)?.intValue, shot.count)
    }

    func testListenerHearsDelivered() throws {
        let c = try client()
        defer { c.close() }
        let recorder = Recorder()
        c.setListener(listener: recorder)
        let id = try c.submit(feedback: Feedback(summary: "Listener check"))
        _ = try c.flush(budget: 30)

        let delivered = recorder.events.compactMap { event -> Receipt? in
            if case let .delivered(receipt) = event { return receipt }
            return nil
        }
        XCTAssertEqual(delivered.count, 1)
        XCTAssertEqual(delivered.first?.id, id)
        assertServerKey(delivered.first?.serverKey)
    }

    func testInjected503GivesFailedEvent() throws {
        try control("DELETE", "/_sandbox/faults")
        try control("POST", "/_sandbox/faults", body: #"[{"status":503}]"#)
        let c = try client()
        defer { c.close() }
        let recorder = Recorder()
        c.setListener(listener: recorder)
        let id = try c.submit(feedback: Feedback(summary: "Will meet a 503"))

        let receipt = try XCTUnwrap(try c.flush(budget: 30).receipts.first)
        XCTAssertEqual(receipt.state, .queued)
        XCTAssertEqual(receipt.error?.status, 503)
        let failed = recorder.events.compactMap { event -> (Int64, DeliveryError)? in
            if case let .failed(id, error, _) = event { return (id, error) }
            return nil
        }
        XCTAssertEqual(failed.count, 1)
        XCTAssertEqual(failed.first?.0, id)
        XCTAssertEqual(failed.first?.1.status, 503)
        XCTAssertEqual(try c.stats().pending, 1)
    }

    func testInjected422GivesDeadEvent() throws {
        try control("DELETE", "/_sandbox/faults")
        try control("POST", "/_sandbox/faults", body: #"[{"status":422}]"#)
        let c = try client()
        defer { c.close() }
        let recorder = Recorder()
        c.setListener(listener: recorder)
        let id = try c.submit(feedback: Feedback(summary: "Will meet a 422"))

        let receipt = try XCTUnwrap(try c.flush(budget: 30).receipts.first)
        XCTAssertEqual(receipt.state, .dead)
        XCTAssertTrue(recorder.events.contains { event in
            if case let .dead(deadId, error) = event { return deadId == id && error.status == 422 }
            return false
        })
        XCTAssertEqual(try c.stats().dead, 1)

        try c.retry(id: id)
        XCTAssertEqual(try c.flush(budget: 30).receipts.first?.state, .delivered)
    }

    func testErrorsAreThrown() throws {
        // A bad config: no base URL and no company. Needs no sandbox.
        var bad = config(baseUrl: "unused")
        bad.baseUrl = nil
        XCTAssertThrowsError(try FieldReportClient(config: bad)) { error in
            guard case FieldReportError.InvalidConfig = error else {
                return XCTFail("expected InvalidConfig, got \(error)")
            }
        }

        let c = try FieldReportClient(config: config(baseUrl: "http://127.0.0.1:9/api/v1"))
        defer { c.close() }
        XCTAssertThrowsError(try c.submit(feedback: Feedback(summary: "  "))) { error in
            guard case FieldReportError.InvalidInput = error else {
                return XCTFail("expected InvalidInput, got \(error)")
            }
        }
        let missing = outbox.appendingPathComponent("does-not-exist.png").path
        XCTAssertThrowsError(try c.submit(feedback: Feedback(
            summary: "x", attachments: [Attachment(elementKey: "Screenshot", path: missing)]
        ))) { error in
            guard case FieldReportError.AttachmentUnreadable = error else {
                return XCTFail("expected AttachmentUnreadable, got \(error)")
            }
        }
        XCTAssertThrowsError(try c.report(id: 424_242)) { error in
            XCTAssertEqual(error as? FieldReportError, .NotFound(id: 424_242))
        }
        XCTAssertEqual(try c.stats().pending, 0)

        c.close()
        XCTAssertThrowsError(try c.submit(feedback: Feedback(summary: "after close"))) { error in
            XCTAssertEqual(error as? FieldReportError, .Closed)
        }
    }

    func testCrashReport() throws {
        let c = try client()
        defer { c.close() }
        let log = "\npanic: index out of range\n" + String(repeating: "  at Widget.frame(Widget.swift:1)\n", count: 500)
        let id = try c.submitCrash(crash: CrashReport(text: log))
        let status = try c.report(id: id)
        XCTAssertEqual(status.kind, .crash)
        XCTAssertTrue(status.summary.contains("index out of range"), status.summary)

        let receipt = try XCTUnwrap(try c.flush(budget: 30).receipts.first)
        XCTAssertEqual(receipt.state, .delivered)
        let attachment = try XCTUnwrap(try c.report(id: id).attachments.first)
        XCTAssertEqual(attachment.elementKey, "CrashLog")
        XCTAssertTrue(attachment.fileName.hasSuffix(".gz"))
        let upload = try XCTUnwrap(try sandboxUploads(key: try XCTUnwrap(receipt.serverKey)).first)
        XCTAssertEqual(upload["sha256_hex"] as? String, attachment.sha256)
    }

    func testStats() throws {
        let c = try client()
        defer { c.close() }
        try c.setConsent(granted: false)
        _ = try c.submit(feedback: Feedback(summary: "held"))
        let held = try c.flush(budget: 10)
        XCTAssertTrue(held.receipts.isEmpty)
        XCTAssertNotNil(held.stopped)
        var stats = try c.stats()
        XCTAssertFalse(stats.consent)
        XCTAssertEqual(stats.pending, 1)

        try c.setConsent(granted: true)
        XCTAssertEqual(try c.flush(budget: 30).receipts.first?.state, .delivered)
        stats = try c.stats()
        XCTAssertEqual(stats.pending, 0)
        XCTAssertEqual(stats.delivered, 1)
    }
}
