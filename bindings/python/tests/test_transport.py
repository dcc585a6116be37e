"""Delivery through the app's own HTTP client (`open_with_transport`): here
a transport on Python's http.client, as an app would write one."""

import hashlib
import http.client
import os
import time
import urllib.parse
from datetime import timedelta

import pytest

import fieldreport as fr
from conftest import API_KEY, make_config

FLUSH = timedelta(seconds=30)


class HttpClientTransport:
    """One connection per request; a file body streamed in chunks."""

    def __init__(self):
        self.requests = []

    def send(self, request):
        self.requests.append(request)
        url = urllib.parse.urlsplit(request.url)
        target = url.path + ("?" + url.query if url.query else "")
        timeout = request.timeout_ms / 1000
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
        try:
            conn.connect()
        except OSError as e:
            raise fr.TransportError.NotSent(f"connect: {e}")
        try:
            body = request.body
            if body.is_empty():
                data = None
            elif body.is_bytes():
                data = body.data
            else:
                data = self._stream(body.prefix, body.path, body.suffix)
            headers = {h.name: h.value for h in request.headers}
            conn.request(request.method, target, body=data, headers=headers)
            resp = conn.getresponse()
            answer = resp.read(1024 * 1024)
            return fr.HttpResponse(
                status=resp.status,
                headers=[fr.HttpHeader(name=k, value=v) for k, v in resp.getheaders()],
                body=answer,
            )
        except OSError as e:
            raise fr.TransportError.Failed(f"{type(e).__name__}: {e}")
        finally:
            conn.close()

    @staticmethod
    def _stream(prefix, path, suffix):
        yield prefix
        with open(path, "rb") as f:
            while chunk := f.read(64 * 1024):
                yield chunk
        yield suffix


def open_client(tmp_path, sandbox, transport, **overrides):
    config = make_config(tmp_path / "outbox", sandbox.base_url, **overrides)
    return fr.FieldReportClient.open_with_transport(config, transport)


def test_a_report_and_its_attachment_go_through_the_apps_transport(tmp_path, sandbox):
    transport = HttpClientTransport()
    client = open_client(tmp_path, sandbox, transport)
    shot = os.urandom(200 * 1024)
    path = tmp_path / "shot.png"
    path.write_bytes(shot)
    report_id = client.submit(
        fr.Feedback(
            summary="Through http.client",
            attachments=[fr.Attachment(element_key="Screenshot", path=str(path))],
        )
    )
    result = client.flush(FLUSH)
    assert result.pending == 0, result
    assert client.report(report_id).state == fr.ReportState.DELIVERED
    client.close()

    state = sandbox.state()
    assert [f["body"]["summary"] for f in state["feedback"]] == ["Through http.client"]
    (upload,) = state["uploads"]
    assert upload["sha256_hex"] == hashlib.sha256(shot).hexdigest()
    # Every request went through the transport; the upload as the outbox's
    # file, to stream.
    assert len(transport.requests) == len(state["requests"]) == 2
    file_body = transport.requests[1].body
    assert file_body.is_file()
    assert file_body.path.startswith(str(tmp_path / "outbox"))
    # The request's URL carries the key; its string form leaves it out.
    assert API_KEY in transport.requests[1].url
    for shown in (str(transport.requests[1]), repr(transport.requests[1])):
        assert API_KEY not in shown, shown
        assert "/fileElements/" in shown, shown


def test_not_sent_and_a_stray_exception_are_told_apart(tmp_path, sandbox):
    class Refusing:
        def send(self, request):
            raise fr.TransportError.NotSent(f"no route to {request.url}")

    client = open_client(tmp_path / "a", sandbox, Refusing())
    report_id = client.submit(fr.Feedback(summary="never sent"))
    result = client.flush(FLUSH)
    assert result.pending == 1
    status = client.report(report_id)
    assert status.state == fr.ReportState.QUEUED
    assert "no route to" in status.last_error.message
    # The URL's API key is taken out of the transport's words.
    assert API_KEY not in status.last_error.message
    client.close()

    # A bug in the transport (any other exception) may have come after the
    # request left: the report is in doubt, then sent again and counted.
    class Buggy(HttpClientTransport):
        def __init__(self):
            super().__init__()
            self.failed = False

        def send(self, request):
            answer = super().send(request)
            if not self.failed:
                self.failed = True
                raise ValueError("a bug after sending")
            return answer

    client = open_client(tmp_path / "b", sandbox, Buggy())
    report_id = client.submit(fr.Feedback(summary="sent, then a bug"))
    client.flush(FLUSH)
    for _ in range(100):
        if client.flush(FLUSH).pending == 0:
            break
        time.sleep(0.1)  # the backoff
    status = client.report(report_id)
    assert status.state == fr.ReportState.DELIVERED, status.last_error.message
    assert client.stats().ambiguous_resends == 1
    summaries = [f["body"]["summary"] for f in sandbox.state()["feedback"]]
    assert summaries.count("sent, then a bug") == 2
    client.close()
