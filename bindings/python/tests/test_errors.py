"""Errors surface as FieldReportError subclasses with the core's reasons,
and never carry the API key."""

import pytest

import fieldreport as fr
from conftest import make_config

SECRET = "s3cret-api-key-do-not-print"


def test_empty_summary_is_invalid_input(client):
    with pytest.raises(fr.FieldReportError.InvalidInput) as info:
        client.submit(fr.Feedback(summary="   "))
    assert "summary" in info.value.reason
    assert client.stats().pending == 0


def test_missing_file_is_attachment_unreadable(client, tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(fr.FieldReportError.AttachmentUnreadable) as info:
        client.submit(
            fr.Feedback(
                summary="with a missing file",
                attachments=[fr.Attachment(element_key="Screenshot", path=str(missing))],
            )
        )
    assert "nope.png" in info.value.name
    assert client.stats().pending == 0


def test_crash_log_file_missing_is_attachment_unreadable(client, tmp_path):
    with pytest.raises(fr.FieldReportError.AttachmentUnreadable):
        client.submit_crash(fr.CrashReport(path=str(tmp_path / "gone.log")))


def test_attachment_needs_exactly_one_source(client):
    for att in [
        fr.Attachment(element_key="Log"),
        fr.Attachment(element_key="Log", path="/etc/hostname", data=b"x", file_name="x"),
    ]:
        with pytest.raises(fr.FieldReportError.InvalidInput) as info:
            client.submit(fr.Feedback(summary="s", attachments=[att]))
        assert "exactly one" in info.value.reason


def test_crash_needs_exactly_one_log(client):
    with pytest.raises(fr.FieldReportError.InvalidInput):
        client.submit_crash(fr.CrashReport())
    with pytest.raises(fr.FieldReportError.InvalidInput):
        client.submit_crash(fr.CrashReport(text="boom", path="/tmp/x"))


def test_field_value_must_be_json_text(client):
    with pytest.raises(fr.FieldReportError.InvalidInput) as info:
        client.submit(
            fr.Feedback(summary="s", fields=[fr.Field(name="title", json_value="unquoted")])
        )
    assert '"title"' in info.value.reason and "quoted" in info.value.reason


def test_bad_config_is_invalid_config(tmp_path, sandbox):
    bad = make_config(tmp_path / "o1", sandbox.base_url, project_key="a/b")
    with pytest.raises(fr.FieldReportError.InvalidConfig) as info:
        fr.FieldReportClient(bad)
    assert "project_key" in info.value.reason

    clear_text = make_config(
        tmp_path / "o2", "http://feedback.example.com/api/v1", api_key=SECRET
    )
    with pytest.raises(fr.FieldReportError.InvalidConfig) as info:
        fr.FieldReportClient(clear_text)
    assert "clear text" in info.value.reason
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)

    with pytest.raises(fr.FieldReportError.InvalidConfig):
        fr.FieldReportClient(make_config(tmp_path / "o3", None))  # no base_url, no company

    bad_policy = make_config(
        tmp_path / "o4", sandbox.base_url, policy=fr.Policy(max_attempts=0)
    )
    with pytest.raises(fr.FieldReportError.InvalidConfig) as info:
        fr.FieldReportClient(bad_policy)
    assert "max_attempts" in info.value.reason


def test_errors_are_one_exception_family(client):
    with pytest.raises(fr.FieldReportError) as info:
        client.report(987654)
    assert isinstance(info.value, fr.FieldReportError.NotFound)
    assert info.value.id == 987654
    with pytest.raises(fr.FieldReportError.InvalidInput):
        client.set_api_key("has space")


def test_closed_client_refuses_calls(client):
    client.close()
    with pytest.raises(fr.FieldReportError.Closed):
        client.submit(fr.Feedback(summary="too late"))


def test_config_never_prints_the_api_key(tmp_path):
    config = make_config(tmp_path, "https://acme.centercode.com/api/v1", api_key=SECRET)
    for text in (str(config), repr(config)):
        assert SECRET not in text
        assert "redacted" in text
    assert config.api_key == SECRET  # still readable on purpose


def test_version():
    assert fr.version().count(".") == 2
