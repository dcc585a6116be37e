"""`submit_many`: a batch of feedback and crash reports, all or nothing."""

import hashlib
from datetime import timedelta

import pytest

import fieldreport as fr
from conftest import make_config

FLUSH = timedelta(seconds=30)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def outbox_snapshot(client, outbox):
    """Everything observable about an outbox: its reports and its files."""
    files = sorted(p.name for p in (outbox / "files").iterdir())
    return client.reports(fr.ReportFilter()), files


def test_a_batch_is_stored_in_order_and_delivered(client, sandbox, tmp_path):
    shot = b"\x89PNG batch screenshot " * 100
    crash_log = "panic: batch item two\nat main.rs:1\n"
    ids = client.submit_many(
        [
            fr.Submission.FEEDBACK(
                fr.Feedback(
                    summary="batch zero",
                    attachments=[
                        fr.Attachment(element_key="Screenshot", data=shot, file_name="shot.png")
                    ],
                )
            ),
            fr.Submission.FEEDBACK(
                feedback=fr.Feedback(
                    summary="batch one",
                    fields=[fr.Field(name="topic", json_value="23795")],
                )
            ),
            fr.Submission.CRASH(crash=fr.CrashReport(text=crash_log)),
        ]
    )
    assert len(ids) == 3 and all(isinstance(i, int) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == 3
    kinds = [client.report(i).kind for i in ids]
    assert kinds == [fr.ReportKind.FEEDBACK, fr.ReportKind.FEEDBACK, fr.ReportKind.CRASH]
    assert [client.report(i).summary for i in ids[:2]] == ["batch zero", "batch one"]
    assert client.stats().pending == 3

    result = client.flush(FLUSH)
    assert [r.id for r in result.receipts] == ids
    assert all(r.state == fr.ReportState.DELIVERED for r in result.receipts)

    state = sandbox.state()
    bodies = [f["body"] for f in state["feedback"]]
    assert [b["summary"] for b in bodies] == ["batch zero", "batch one", "panic: batch item two"]
    assert bodies[1]["topic"] == 23795
    uploads = {u["file_name"]: u for u in state["uploads"]}
    assert set(uploads) == {"shot.png", "crash.log.gz"}
    assert uploads["shot.png"]["sha256_hex"] == sha256(shot)
    [log_att] = client.report(ids[2]).attachments
    assert uploads["crash.log.gz"]["sha256_hex"] == log_att.sha256
    assert uploads["crash.log.gz"]["element_key"] == "CrashLog"


def test_an_empty_batch_stores_nothing(client, tmp_path):
    before = outbox_snapshot(client, tmp_path / "outbox")
    assert client.submit_many([]) == []
    assert outbox_snapshot(client, tmp_path / "outbox") == before


@pytest.mark.parametrize(
    "bad, error, index",
    [
        # Refused by the library's checks.
        (fr.Submission.FEEDBACK(fr.Feedback(summary="   ")), fr.FieldReportError.InvalidInput, 1),
        (fr.Submission.CRASH(fr.CrashReport(text="")), fr.FieldReportError.InvalidInput, 1),
        # Refused while converting the foreign record.
        (
            fr.Submission.FEEDBACK(
                fr.Feedback(summary="s", fields=[fr.Field(name="title", json_value="unquoted")])
            ),
            fr.FieldReportError.InvalidInput,
            1,
        ),
        (fr.Submission.CRASH(fr.CrashReport()), fr.FieldReportError.InvalidInput, 1),
    ],
)
def test_one_bad_item_refuses_the_whole_batch(client, tmp_path, bad, error, index):
    outbox = tmp_path / "outbox"
    client.submit(fr.Feedback(summary="stored before"))
    before = outbox_snapshot(client, outbox)
    good = fr.Submission.FEEDBACK(
        fr.Feedback(
            summary="fine on its own",
            attachments=[fr.Attachment(element_key="Log", data=b"x" * 4096, file_name="a.log")],
        )
    )
    with pytest.raises(error) as info:
        client.submit_many([good, bad, good])
    assert info.value.reason.startswith(f"batch item {index}: "), info.value.reason
    # Nothing of the batch stayed: no report, no staged copy of item 0's file.
    assert outbox_snapshot(client, outbox) == before
    assert client.stats().pending == 1


def test_a_missing_file_names_the_item(client, tmp_path):
    outbox = tmp_path / "outbox"
    before = outbox_snapshot(client, outbox)
    with pytest.raises(fr.FieldReportError.AttachmentUnreadable) as info:
        client.submit_many(
            [
                fr.Submission.CRASH(fr.CrashReport(text="panic: fine")),
                fr.Submission.CRASH(fr.CrashReport(text="panic: fine too")),
                fr.Submission.CRASH(fr.CrashReport(path=str(tmp_path / "gone.log"))),
            ]
        )
    assert "gone.log" in info.value.name
    assert info.value.reason.startswith("batch item 2: "), info.value.reason
    assert outbox_snapshot(client, outbox) == before


def test_a_batch_over_max_reports_is_outbox_full(tmp_path, sandbox):
    config = make_config(tmp_path / "capped", sandbox.base_url, policy=fr.Policy(max_reports=2))
    client = fr.FieldReportClient(config)
    try:
        batch = [fr.Submission.FEEDBACK(fr.Feedback(summary=f"r{i}")) for i in range(3)]
        with pytest.raises(fr.FieldReportError.OutboxFull):
            client.submit_many(batch)
        assert client.stats().pending == 0
        assert len(client.submit_many(batch[:2])) == 2
    finally:
        client.close()


def test_a_closed_client_refuses_a_batch(client):
    client.close()
    with pytest.raises(fr.FieldReportError.Closed):
        client.submit_many([fr.Submission.FEEDBACK(fr.Feedback(summary="too late"))])
