"""Destinations other than Centercode, through the Python layer: feedback
with an image delivered to the ABC sandbox, and ABC settings refused at
open with the setting named."""

import hashlib
from datetime import timedelta

import pytest

import fieldreport as fr

from conftest import API_KEY

# A 1x1 PNG: ABC's channel takes image files only.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000100ff89993d1d"
    "0000000049454e44ae426082"
)

ABC_MAP = {
    "description": "description",
    "submitter": "submitter",
    "crash_log": "crash_log",
    "client_id": "client_id",
    "images": "images",
    "context.device.os_name": "os",
}


def abc_config(outbox, base_url, **abc):
    destination = dict(base_url=base_url, project_id=1, channel_id=1, map=ABC_MAP)
    destination.update(abc)
    return fr.Config(
        outbox_dir=outbox,
        api_key=API_KEY,
        abc=fr.AbcDestination(**destination),
        policy=fr.Policy(
            retry_base=timedelta(milliseconds=10),
            retry_max=timedelta(milliseconds=50),
            request_timeout=timedelta(seconds=10),
        ),
    )


@pytest.mark.parametrize("presigned", [False, True], ids=["multipart", "presigned"])
def test_feedback_with_a_png_is_delivered_to_abc(tmp_path, abc_sandbox, presigned):
    shot = tmp_path / "shot.png"
    shot.write_bytes(PNG)
    config = abc_config(tmp_path / "outbox", abc_sandbox.base_url, presigned_images=presigned)
    with fr.FieldReportClient(config) as client:
        fid = client.submit(
            fr.Feedback(
                summary="Export button does nothing",
                description="Tapped it twice.",
                submitter="ann@example.com",
                fields={"rating": 4},
                attachments=[fr.Attachment(element_key="screenshot", path=shot)],
            )
        )
        result = client.flush(30)

        assert [r.id for r in result.receipts] == [fid]
        receipt = result.receipts[0]
        assert receipt.state == fr.ReportState.DELIVERED, receipt
        assert receipt.rejected_attachments == []
        assert receipt.server_key is not None and receipt.server_key.isdigit(), receipt
        assert result.pending == 0

        status = client.report(fid)
        assert status.state == fr.ReportState.DELIVERED
        assert [a.state for a in status.attachments] == [fr.AttachmentState.UPLOADED]

    state = abc_sandbox.state()
    assert state["kind"] == "abc"
    [created] = state["feedback"]
    assert created["id"] == receipt.server_key
    body = created["body"]
    assert body["message"] == "Export button does nothing"
    assert body["description"] == "Tapped it twice."
    assert body["submitter"] == "ann@example.com"
    assert body["rating"] == 4
    assert body["client_id"] == status.client_id
    [upload] = state["uploads"]
    assert upload["sha256_hex"] == hashlib.sha256(PNG).hexdigest()
    # A file part of the multipart create, or a PUT to the presigned URL
    # whose object URL the create names.
    assert upload["element_key"] == ("presigned" if presigned else "images"), upload
    if presigned:
        [url] = body["images"]
        assert "?" not in url, url


@pytest.mark.parametrize("bad", ["twelve", "0", "-1", ""])
def test_a_bad_abc_project_id_is_invalid_config_naming_it(tmp_path, bad):
    outbox = tmp_path / "outbox"
    config = abc_config(outbox, "http://127.0.0.1:9", project_id=bad)
    with pytest.raises(fr.FieldReportError.InvalidConfig) as info:
        fr.FieldReportClient(config)
    assert info.value.reason.startswith("abc.project_id: "), info.value.reason
    assert API_KEY not in str(info.value)
    assert not outbox.exists(), "nothing is opened for a refused config"


def test_abc_ids_may_be_ints_and_the_key_is_never_printed(tmp_path):
    config = abc_config(tmp_path / "outbox", "http://127.0.0.1:9", project_id=12, channel_id="3")
    assert config.abc.project_id == "12" and config.abc.channel_id == "3"
    for text in (str(config), repr(config)):
        assert API_KEY not in text
        assert "redacted" in text
    with pytest.raises(TypeError):
        fr.AbcDestination(base_url="http://127.0.0.1:9", project_id=True, channel_id=1)


def test_abc_and_apptentive_together_are_refused(tmp_path):
    config = abc_config(tmp_path / "outbox", "http://127.0.0.1:9")
    config.apptentive = fr.ApptentiveDestination(base_url="http://127.0.0.1:9")
    with pytest.raises(fr.FieldReportError.InvalidConfig) as info:
        fr.FieldReportClient(config)
    assert "at most one" in info.value.reason


def test_centercode_still_needs_its_project_key(tmp_path, sandbox):
    # project_key defaults to "" for the other destinations' sake; Centercode
    # refuses it at open as before.
    config = fr.Config(
        outbox_dir=tmp_path / "outbox",
        base_url=sandbox.base_url,
        feedback_type_key="Mobile",
        api_key=API_KEY,
    )
    with pytest.raises(fr.FieldReportError.InvalidConfig) as info:
        fr.FieldReportClient(config)
    assert info.value.reason == "project_key is empty"
