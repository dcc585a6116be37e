"""Listener callbacks: Delivered, Failed (retried), Dead, from any thread."""

import threading
from datetime import datetime, timedelta

import fieldreport as fr

FLUSH = timedelta(seconds=30)


def test_delivered_event(client, recorder):
    client.set_listener(recorder)
    report_id = client.submit(fr.Feedback(summary="hello"))
    client.flush(FLUSH)
    event = recorder.wait_for(lambda e: e.is_DELIVERED())
    assert event.receipt.id == report_id
    assert event.receipt.state == fr.ReportState.DELIVERED
    assert event.receipt.server_key.startswith("BUG-")
    assert isinstance(event, fr.Event)


def test_failed_then_delivered_after_a_server_error(client, sandbox, recorder):
    client.set_listener(recorder)
    report_id = client.submit(fr.Feedback(summary="flaky server"))
    sandbox.inject({"status": 503})

    first = client.flush(FLUSH)
    assert first.pending == 1
    assert first.stopped  # a server error stops the batch
    failed = recorder.wait_for(lambda e: e.is_FAILED())
    assert failed.id == report_id
    assert failed.error.status == 503
    assert isinstance(failed.retry_at, datetime)

    # Retries are quick in these tests (retry_base 10 ms, retry_max 50 ms).
    deadline = datetime.now() + timedelta(seconds=10)
    while client.stats().pending and datetime.now() < deadline:
        client.flush(FLUSH)
    recorder.wait_for(lambda e: e.is_DELIVERED() and e.receipt.id == report_id)


def test_dead_event_on_a_permanent_refusal(client, sandbox, recorder):
    client.set_listener(recorder)
    report_id = client.submit(fr.Feedback(summary="refused"))
    sandbox.inject({"status": 422})
    client.flush(FLUSH)
    dead = recorder.wait_for(lambda e: e.is_DEAD())
    assert dead.id == report_id
    assert dead.error.status == 422
    assert client.report(report_id).state == fr.ReportState.DEAD


def test_background_sender_calls_back_from_its_thread(client, recorder):
    threads = []

    class ThreadRecorder:
        def on_event(self, event):
            threads.append(threading.get_ident())
            recorder.on_event(event)

    client.set_listener(ThreadRecorder())
    client.start_sender()
    report_id = client.submit(fr.Feedback(summary="sent in the background"))
    recorder.wait_for(lambda e: e.is_DELIVERED() and e.receipt.id == report_id)
    client.stop_sender()
    assert threads and threading.get_ident() not in threads


def test_a_raising_listener_does_not_break_delivery(client, recorder):
    class Broken:
        def on_event(self, event):
            recorder.on_event(event)
            raise RuntimeError("listener bug")

    client.set_listener(Broken())
    client.submit(fr.Feedback(summary="still delivered"))
    result = client.flush(FLUSH)
    assert result.receipts[0].state == fr.ReportState.DELIVERED
    recorder.wait_for(lambda e: e.is_DELIVERED())


def test_listener_can_be_removed(client, recorder):
    client.set_listener(recorder)
    client.set_listener(None)
    client.submit(fr.Feedback(summary="nobody listens"))
    client.flush(FLUSH)
    assert recorder.events == []


def test_a_multi_mb_upload_reports_progress_ending_at_its_size(client, recorder, tmp_path):
    size = 3 * 1024 * 1024
    path = tmp_path / "big.bin"
    path.write_bytes(b"\x07" * size)
    client.set_listener(recorder)
    report_id = client.submit(
        fr.Feedback(
            summary="a big upload",
            attachments=[fr.Attachment(element_key="Screenshot", path=str(path))],
        )
    )
    client.flush(FLUSH)
    recorder.wait_for(lambda e: e.is_DELIVERED() and e.receipt.id == report_id)
    progress = [e for e in recorder.events if e.is_PROGRESS()]
    assert len(progress) >= 2, progress
    assert all(e.id == report_id and e.file_name == "big.bin" for e in progress)
    assert all(e.total_bytes == size for e in progress)
    assert progress[0].sent_bytes == 0
    sent = [e.sent_bytes for e in progress]
    assert sent == sorted(set(sent)), sent  # rising, never repeated
    assert sent[-1] == size
