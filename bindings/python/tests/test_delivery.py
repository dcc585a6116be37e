"""Submit → flush against a sandbox, checked on the server side."""

import gzip
import hashlib
import json
import os
from datetime import datetime, timedelta

import fieldreport as fr

FLUSH = timedelta(seconds=30)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def test_feedback_and_attachments_arrive_intact(client, sandbox, tmp_path):
    screenshot = os.urandom(300 * 1024)  # above SQLite's inline sweet spot
    path = tmp_path / "screen.png"
    path.write_bytes(screenshot)
    log = b"line 1\nline 2\n\x00\xff binary tail"

    report_id = client.submit(
        fr.Feedback(
            summary="Lighting presets should be more robust",
            description="I wish the app had more lighting presets.",
            submitter="jim@example.com",
            fields=[
                fr.Field(name="topic", json_value=json.dumps(23795)),
                fr.Field(name="severity", json_value=json.dumps("minor")),
                fr.Field(name="tags", json_value=json.dumps(["ui", "presets"])),
            ],
            attachments=[
                fr.Attachment(element_key="Screenshot", path=str(path)),
                fr.Attachment(
                    element_key="Log",
                    data=log,
                    file_name="app.log",
                    content_type="text/plain",
                ),
            ],
        )
    )
    assert isinstance(report_id, int)
    # The outbox holds its own copy: the app may delete its file at once.
    path.unlink()

    result = client.flush(FLUSH)
    assert result.stopped is None
    assert result.pending == 0 and result.dead == 0
    [receipt] = result.receipts
    assert receipt.id == report_id
    assert receipt.state == fr.ReportState.DELIVERED
    assert receipt.server_key.startswith("BUG-")
    assert receipt.error is None and receipt.rejected_attachments == []

    state = sandbox.state()
    [created] = state["feedback"]
    assert created["key"] == receipt.server_key
    body = created["body"]
    assert body["summary"] == "Lighting presets should be more robust"
    assert body["description"] == "I wish the app had more lighting presets."
    assert body["submitter"] == "jim@example.com"
    assert body["topic"] == 23795
    assert body["severity"] == "minor"
    assert body["tags"] == ["ui", "presets"]

    uploads = {u["file_name"]: u for u in state["uploads"]}
    assert set(uploads) == {"screen.png", "app.log"}
    shot = uploads["screen.png"]
    assert shot["feedback_key"] == receipt.server_key
    assert shot["element_key"] == "Screenshot"
    assert shot["content_type"] == "image/png"
    assert shot["size"] == len(screenshot)
    assert shot["sha256_hex"] == sha256(screenshot)
    assert uploads["app.log"]["element_key"] == "Log"
    assert uploads["app.log"]["content_type"] == "text/plain"
    assert uploads["app.log"]["sha256_hex"] == sha256(log)

    status = client.report(report_id)
    assert status.state == fr.ReportState.DELIVERED
    assert status.kind == fr.ReportKind.FEEDBACK
    assert status.server_key == receipt.server_key
    assert isinstance(status.submitted_at, datetime)
    assert {a.file_name: a.sha256 for a in status.attachments} == {
        "screen.png": sha256(screenshot),
        "app.log": sha256(log),
    }
    assert all(a.state == fr.AttachmentState.UPLOADED for a in status.attachments)
    context = json.loads(status.context_json)
    assert context["app_name"] == "pytest"


def outbox_files_by_sha256(outbox):
    """The attachment copies in the outbox, keyed by their SHA-256."""
    return {
        sha256(p.read_bytes()): p.read_bytes() for p in outbox.rglob("*") if p.is_file()
    }


def test_crash_report_from_text_and_file(client, sandbox, tmp_path):
    text = "thread 'main' panicked at src/render.rs:42:7:\nindex out of bounds\n"
    crash_id = client.submit_crash(fr.CrashReport(text=text))
    log_file = tmp_path / "core.log"
    log_file.write_text("SIGSEGV in render_frame\n" + "frame\n" * 5000)
    file_id = client.submit_crash(
        fr.CrashReport(path=str(log_file), summary="Renderer crashed", file_name="render.log")
    )

    # Before delivery, the outbox holds the gzip-compressed logs.
    copies = outbox_files_by_sha256(tmp_path / "outbox")
    expected = {crash_id: text.encode(), file_id: log_file.read_bytes()}
    for report_id, log in expected.items():
        [att] = client.report(report_id).attachments
        assert gzip.decompress(copies[att.sha256]) == log

    result = client.flush(FLUSH)
    assert [r.state for r in result.receipts] == [fr.ReportState.DELIVERED] * 2

    state = sandbox.state()
    summaries = sorted(f["body"]["summary"] for f in state["feedback"])
    assert "Renderer crashed" in summaries
    # Without a summary, it is the log's first meaningful line.
    assert any("panicked at src/render.rs" in s for s in summaries), summaries

    uploads = {u["file_name"]: u for u in state["uploads"]}
    assert set(uploads) == {"crash.log.gz", "render.log.gz"}
    for report_id, name in [(crash_id, "crash.log.gz"), (file_id, "render.log.gz")]:
        status = client.report(report_id)
        assert status.kind == fr.ReportKind.CRASH
        [att] = status.attachments
        assert att.file_name == name
        up = uploads[name]
        assert up["element_key"] == "CrashLog"
        assert (up["sha256_hex"], up["size"]) == (att.sha256, att.size)
    assert uploads["render.log.gz"]["size"] < log_file.stat().st_size


def test_stats_and_listing(client, sandbox):
    empty = client.stats()
    assert (empty.pending, empty.delivered, empty.dead) == (0, 0, 0)
    assert empty.consent is True and empty.paused_for_auth is False

    ids = [client.submit(fr.Feedback(summary=f"report {i}")) for i in range(3)]
    queued = client.stats()
    assert queued.pending == 3
    assert queued.bytes > 0
    assert queued.oldest_pending_age_secs is not None

    assert [s.id for s in client.reports(fr.ReportFilter())] == ids[::-1]
    assert len(client.reports(fr.ReportFilter(limit=2))) == 2

    # The oldest report is sent first; a permanent refusal makes it dead.
    sandbox.inject({"status": 422})
    result = client.flush(FLUSH)
    assert result.dead == 1 and result.pending == 0
    after = client.stats()
    assert (after.pending, after.delivered, after.dead) == (0, 2, 1)
    assert after.last_error.status == 422

    [dead] = client.reports(fr.ReportFilter(states=[fr.ReportState.DEAD]))
    assert dead.id == ids[0]
    assert dead.last_error.status == 422
    assert len(client.reports(fr.ReportFilter(states=[fr.ReportState.DELIVERED]))) == 2
    assert client.reports(fr.ReportFilter(kind=fr.ReportKind.CRASH)) == []

    # Retry puts it back; it goes through now.
    client.retry(dead.id)
    assert client.flush(FLUSH).receipts[0].state == fr.ReportState.DELIVERED
    assert client.stats().delivered == 3

    client.purge(ids[0])
    assert client.stats().delivered == 2
    client.purge_all()
    assert client.reports(fr.ReportFilter()) == []


def test_consent_holds_reports(client, sandbox):
    client.set_consent(False)
    client.submit(fr.Feedback(summary="held until consent"))
    held = client.flush(FLUSH)
    assert held.receipts == [] and held.pending == 1 and held.stopped
    assert sandbox.state()["feedback"] == []
    assert client.stats().consent is False

    client.set_consent(True)
    assert client.flush(FLUSH).receipts[0].state == fr.ReportState.DELIVERED


def test_offline_holds_reports(client, sandbox):
    client.set_online(False)
    client.submit(fr.Feedback(summary="offline"))
    assert client.flush(FLUSH).pending == 1
    assert sandbox.state()["feedback"] == []
    client.set_online(True)
    assert client.flush(FLUSH).pending == 0


def test_refused_api_key_pauses_until_a_new_key(client, sandbox, recorder):
    client.set_listener(recorder)
    sandbox.configure(api_key="rotated-key")
    report_id = client.submit(fr.Feedback(summary="sent after the key rotation"))

    paused = client.flush(FLUSH)
    assert paused.pending == 1 and paused.stopped
    event = recorder.wait_for(lambda e: e.is_PAUSED())
    assert event.error.status == 401
    assert client.stats().paused_for_auth is True
    assert "rotated-key" not in repr(event) and "sandbox-key" not in repr(event)

    client.set_api_key("rotated-key")
    result = client.flush(FLUSH)
    assert [r.id for r in result.receipts] == [report_id]
    assert result.receipts[0].state == fr.ReportState.DELIVERED
    assert client.stats().paused_for_auth is False


def test_metered_network_and_moved_aside(client):
    client.set_metered(True)
    client.submit(fr.Feedback(summary="small enough for a metered network"))
    assert client.flush(FLUSH).pending == 0
    client.set_metered(False)
    assert client.moved_aside() is None
    assert client.stats().moved_aside is None
