"""The hand-written layer over the generated module (src/fieldreport/
__init__.py): context manager, dict fields, paths, flush durations, times,
reprs, messages, typing, and the installed package itself."""

import ctypes
import pathlib
import time
from datetime import datetime, timedelta, timezone

import pytest

import fieldreport as fr
from conftest import API_KEY, REPO, make_config

# ---------------------------------------------------------------------------
# The installed package
# ---------------------------------------------------------------------------


def test_the_installed_module_is_the_committed_one():
    # The wheel carries the module maturin generated from the library it
    # ships; tests/bindings_drift.rs checks the committed copy against the
    # UDL. Equal here, both are what the UDL says.
    installed = pathlib.Path(fr._ffi.fieldreport.__file__)
    committed = REPO / "bindings/python/src/fieldreport/_ffi/fieldreport.py"
    assert installed.read_bytes() == committed.read_bytes(), (
        f"{installed} differs from {committed}: regenerate with bindings/generate.sh"
    )


def test_the_installed_library_is_a_stripped_release_build():
    lib = pathlib.Path(fr._ffi.fieldreport._UniffiLib._name)
    assert lib.parent == pathlib.Path(fr._ffi.fieldreport.__file__).parent
    # The debug build is about 50 MB; the stripped release about 5.
    size = lib.stat().st_size
    assert size < 15 * 1024 * 1024, f"{lib} is {size} bytes: a debug build?"
    assert isinstance(fr._ffi.fieldreport._UniffiLib, ctypes.CDLL)


def test_the_package_is_typed():
    package = pathlib.Path(fr.__file__).parent
    assert (package / "py.typed").is_file()


# ---------------------------------------------------------------------------
# Context manager
# ---------------------------------------------------------------------------


def test_with_closes_the_client(tmp_path, sandbox):
    config = make_config(tmp_path / "outbox", sandbox.base_url)
    with fr.FieldReportClient(config) as client:
        assert isinstance(client, fr.FieldReportClient)
        client.submit(fr.Feedback(summary="inside with"))
        assert client.flush(30).pending == 0
    with pytest.raises(fr.FieldReportError.Closed):
        client.submit(fr.Feedback(summary="after with"))


def test_with_closes_the_client_on_an_exception(tmp_path, sandbox):
    config = make_config(tmp_path / "outbox", sandbox.base_url)
    with pytest.raises(KeyError):
        with fr.FieldReportClient(config) as client:
            client.start_sender()
            raise KeyError("the rig's own bug")
    with pytest.raises(fr.FieldReportError.Closed):
        client.submit(fr.Feedback(summary="after the exception"))
    # Closed, the outbox opens again at once.
    with fr.FieldReportClient(config) as again:
        assert again.stats().pending == 0


def test_with_works_for_a_client_on_the_apps_transport(tmp_path, sandbox):
    class Refusing:
        def send(self, request):
            raise fr.TransportError.NotSent("no network in this test")

    config = make_config(tmp_path / "outbox", sandbox.base_url)
    with fr.FieldReportClient.open_with_transport(config, Refusing()) as client:
        assert isinstance(client, fr.FieldReportClient)
        client.submit(fr.Feedback(summary="held"))
        assert client.flush(5).pending == 1
    with pytest.raises(fr.FieldReportError.Closed):
        client.flush(5)


# ---------------------------------------------------------------------------
# Extra fields as a dict
# ---------------------------------------------------------------------------


def test_fields_are_a_dict_of_python_values(client, sandbox):
    values = {
        "topic": 23795,
        "severity": "minor",
        "ratio": 0.5,
        "tags": ["ui", "presets"],
        "blocking": False,
        "details": {"rig": 7, "runs": [1, 2]},
        "title": 'quotes " and ünïcode',
    }
    report_id = client.submit(fr.Feedback(summary="dict fields", fields=values))
    crash_id = client.submit_crash(fr.CrashReport(text="panic: x", fields={"topic": 1}))
    assert client.flush(30).pending == 0
    bodies = {f["body"]["summary"]: f["body"] for f in sandbox.state()["feedback"]}
    body = bodies["dict fields"]
    for name, value in values.items():
        assert body[name] == value, name
    assert bodies["panic: x"]["topic"] == 1
    assert {client.report(report_id).id, client.report(crash_id).id} == {report_id, crash_id}


def test_fields_read_back_as_fields_and_a_list_of_field_still_works():
    fb = fr.Feedback(summary="s", fields={"topic": 23795, "title": "text"})
    assert fb.fields == [
        fr.Field(name="topic", json_value="23795"),
        fr.Field(name="title", json_value='"text"'),
    ]
    listed = fr.Feedback(summary="s", fields=[fr.Field(name="topic", json_value="23795")])
    assert listed.fields == fb.fields[:1]
    fb.fields = {"later": True}  # assigning converts too
    assert fb.fields == [fr.Field(name="later", json_value="true")]
    assert fr.Feedback(summary="s").fields == []


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"tags": {1, 2}}, "'tags'"),  # a set is not JSON
        ({"ratio": float("nan")}, "'ratio'"),  # nor is NaN
        ({5: "x"}, "5"),  # a name is text
    ],
)
def test_a_field_that_is_not_json_is_invalid_input(client, fields, words):
    with pytest.raises(fr.FieldReportError.InvalidInput) as info:
        client.submit(fr.Feedback(summary="s", fields=fields))
    assert words in info.value.reason
    assert words in str(info.value)
    assert client.stats().pending == 0


def test_fields_of_the_wrong_shape_are_a_type_error():
    with pytest.raises(TypeError, match="dict"):
        fr.Feedback(summary="s", fields="topic=1")
    with pytest.raises(TypeError, match="not a Field"):
        fr.CrashReport(text="t", fields=[("topic", 1)])


# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------


def test_pathlib_paths_are_accepted_everywhere(tmp_path, sandbox):
    shot = tmp_path / "screen.png"
    shot.write_bytes(b"\x89PNG" + bytes(1000))
    log = tmp_path / "core.log"
    log.write_text("SIGSEGV in render_frame\n")
    outbox = tmp_path / "outbox"
    with fr.FieldReportClient(make_config(outbox, sandbox.base_url)) as client:
        assert isinstance(outbox, pathlib.Path)
        client.submit(
            fr.Feedback(
                summary="paths",
                attachments=[fr.Attachment(element_key="Screenshot", path=shot)],
            )
        )
        client.submit_crash(fr.CrashReport(path=log))
        assert client.flush(30).pending == 0
    assert outbox.is_dir()
    names = {u["file_name"] for u in sandbox.state()["uploads"]}
    assert names == {"screen.png", "crash.log.gz"}


def test_a_path_reads_back_as_text_and_a_non_path_is_a_type_error(tmp_path):
    att = fr.Attachment(element_key="Log", path=tmp_path / "a.log")
    assert att.path == str(tmp_path / "a.log")
    config = make_config(tmp_path / "outbox", "http://127.0.0.1:1/api/v1")
    assert config.outbox_dir == str(tmp_path / "outbox")
    with pytest.raises(TypeError, match="Attachment.path"):
        fr.Attachment(element_key="Log", path=42)
    with pytest.raises(TypeError, match="outbox_dir"):
        make_config(tmp_path, "http://127.0.0.1:1/api/v1", outbox_dir=b"/tmp/outbox")


# ---------------------------------------------------------------------------
# flush durations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [30, 2.5, timedelta(seconds=30)])
def test_flush_takes_seconds_or_a_timedelta(client, budget):
    client.submit(fr.Feedback(summary=f"flush({budget!r})"))
    result = client.flush(budget)
    assert result.pending == 0 and len(result.receipts) == 1


@pytest.mark.parametrize(
    "budget, error",
    [
        ("30", TypeError),
        (True, TypeError),
        (None, TypeError),
        (-1, ValueError),
        (timedelta(seconds=-1), ValueError),
        (float("inf"), ValueError),
    ],
)
def test_flush_refuses_a_budget_that_is_not_a_duration(client, budget, error):
    client.submit(fr.Feedback(summary="stays queued"))
    with pytest.raises(error, match="flush budget"):
        client.flush(budget)
    assert client.stats().pending == 1


# ---------------------------------------------------------------------------
# Times
# ---------------------------------------------------------------------------


def test_times_are_aware_and_no_time_is_none(client, sandbox):
    before = datetime.now(timezone.utc)
    report_id = client.submit(fr.Feedback(summary="times"))
    status = client.report(report_id)
    assert status.submitted_at.tzinfo is not None
    assert abs(status.submitted_at - before) < timedelta(seconds=60)
    # Never tried: due at the next flush, no time scheduled.
    assert status.next_attempt_at is None
    assert client.stats().next_attempt_at is None

    sandbox.inject({"status": 503})
    client.flush(30)
    retried = client.report(report_id)
    assert retried.attempts == 1
    assert retried.next_attempt_at is not None
    assert retried.next_attempt_at.tzinfo is not None
    assert retried.next_attempt_at >= before
    assert client.stats().next_attempt_at.tzinfo is not None

    for _ in range(100):
        if client.flush(30).pending == 0:
            break
        time.sleep(0.05)  # the backoff (retry_base 10 ms, retry_max 50 ms)
    delivered = client.report(report_id)
    assert delivered.state == fr.ReportState.DELIVERED
    assert delivered.next_attempt_at is None


def test_context_is_a_dict(client):
    report_id = client.submit(fr.Feedback(summary="context"))
    context = client.report(report_id).context
    assert isinstance(context, dict)
    assert context["app_name"] == "pytest"


# ---------------------------------------------------------------------------
# repr and messages
# ---------------------------------------------------------------------------


def test_records_have_a_readable_repr(client, sandbox, recorder):
    client.set_listener(recorder)
    report_id = client.submit(
        fr.Feedback(summary="repr me", fields={"topic": 23795})
    )
    status = client.report(report_id)
    text = repr(status)
    assert text.startswith("ReportStatus(id=%d, " % report_id), text
    assert "summary='repr me'" in text and "state=<ReportState.QUEUED" in text
    assert "next_attempt_at=None" in text
    assert str(status) == text

    sandbox.inject({"status": 422})
    result = client.flush(30)
    assert repr(result).startswith("FlushResult(receipts=[Receipt(id=%d, " % report_id)
    assert "DeliveryError(status=422, " in repr(result)
    event = recorder.wait_for(lambda e: e.is_DEAD())
    assert repr(event).startswith("Event.DEAD(id=%d, error=DeliveryError(" % report_id)
    assert repr(client.stats()).startswith("Stats(pending=0, ")

    fb = fr.Feedback(
        summary="s",
        fields={"topic": 1},
        attachments=[fr.Attachment(element_key="Log", data=b"xy", file_name="a.log")],
    )
    assert repr(fb) == (
        "Feedback(summary='s', description=None, submitter=None, "
        "fields=[Field(name='topic', json_value='1')], "
        "attachments=[Attachment(element_key='Log', path=None, data=b'xy', "
        "file_name='a.log', content_type=None)])"
    )
    assert repr(fr.Submission.CRASH(fr.CrashReport(text="t"))).startswith(
        "Submission.CRASH(crash=CrashReport(text='t', path=None, "
    )


def test_config_repr_still_hides_the_api_key(tmp_path):
    config = make_config(tmp_path / "outbox", "http://127.0.0.1:1/api/v1")
    for text in (repr(config), str(config)):
        assert API_KEY not in text and "redacted" in text


ERRORS = [
    (fr.FieldReportError.InvalidConfig("no base_url"), "invalid configuration: no base_url"),
    (fr.FieldReportError.InvalidInput("summary is empty"), "invalid input: summary is empty"),
    (
        fr.FieldReportError.AttachmentTooLarge(name="a.bin", size=10, limit=5),
        "attachment 'a.bin' is 10 bytes, over the limit of 5 bytes",
    ),
    (
        fr.FieldReportError.AttachmentUnreadable(name="a.bin", reason="missing"),
        "attachment 'a.bin' cannot be read: missing",
    ),
    (fr.FieldReportError.StorageFull(), "storage full: the disk has no room for this report"),
    (fr.FieldReportError.OutboxFull("500 reports"), "outbox full: 500 reports"),
    (fr.FieldReportError.Storage("disk I/O error"), "outbox storage error: disk I/O error"),
    (fr.FieldReportError.NotFound(7), "no report with id 7"),
    (fr.FieldReportError.InvalidState("not dead"), "invalid state: not dead"),
    (fr.FieldReportError.Closed(), "the client is closed"),
    (fr.TransportError.NotSent("no route"), "not sent: no route"),
    (fr.TransportError.Failed("timeout"), "failed: timeout"),
]


@pytest.mark.parametrize("error, message", ERRORS, ids=lambda e: type(e).__name__)
def test_every_exception_has_a_message(error, message):
    assert str(error) == message
    assert repr(error).startswith(type(error).__qualname__ + "(")


def test_every_error_variant_is_covered():
    variants = {
        name
        for family in (fr.FieldReportError, fr.TransportError)
        for name, v in vars(family).items()
        if isinstance(v, type) and issubclass(v, Exception)
    }
    assert variants == {type(e).__name__ for e, _ in ERRORS}


def test_a_raised_error_has_its_message(client):
    with pytest.raises(fr.FieldReportError.NotFound, match="^no report with id 987654$") as info:
        client.report(987654)
    assert repr(info.value) == "FieldReportError.NotFound(id=987654)"
    client.close()
    with pytest.raises(fr.FieldReportError.Closed, match="^the client is closed$"):
        client.submit(fr.Feedback(summary="too late"))
