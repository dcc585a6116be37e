"""Fixtures: a sandbox (the `fieldreport sandbox` CLI, run as a subprocess
on a free port: Centercode's by default, ABC's with `abc_sandbox`) and
clients pointed at it.

The sandbox binary is $FIELDREPORT_SANDBOX_BIN, or target/debug/fieldreport
in the repository (built by bindings/python/build.sh with `cargo build
--features cli`).
"""

import json
import os
import pathlib
import re
import subprocess
import threading
import urllib.request
from datetime import timedelta

import pytest

import fieldreport as fr

REPO = pathlib.Path(__file__).resolve().parents[3]
API_KEY = "sandbox-key"


def sandbox_binary():
    explicit = os.environ.get("FIELDREPORT_SANDBOX_BIN")
    if explicit:
        return pathlib.Path(explicit)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "fieldreport"


class Sandbox:
    """A running `fieldreport sandbox --kind KIND`, steered through its
    control endpoints. `base_url` is Centercode's API URL (`.../api/v1`), or
    the server's root for the other kinds."""

    def __init__(self, kind="centercode"):
        binary = sandbox_binary()
        if not binary.exists():
            raise RuntimeError(
                f"{binary} is missing: run bindings/python/build.sh "
                "(it runs `cargo build --features cli`)"
            )
        # Port 0: the sandbox picks a free port and prints its base URL.
        self.proc = subprocess.Popen(
            [str(binary), "sandbox", "--kind", kind, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # a start-up error becomes the first line
            text=True,
        )
        line = self._first_line(timeout=30)
        m = re.search(r"listening at (http://127\.0\.0\.1:(\d+)(?:/api/v1)?)\s*$", line)
        if not m:
            self.stop()
            raise RuntimeError(f"unexpected sandbox banner: {line!r}")
        self.base_url = m.group(1)
        self.control = f"http://127.0.0.1:{m.group(2)}/_sandbox"
        # Keep draining stdout so the sandbox never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def _first_line(self, timeout):
        box = {}
        reader = threading.Thread(target=lambda: box.update(line=self.proc.stdout.readline()))
        reader.start()
        reader.join(timeout)
        if "line" not in box or not box["line"]:
            status = self.proc.poll()
            self.stop()
            raise RuntimeError(
                f"the sandbox printed nothing within {timeout}s"
                if status is None
                else f"the sandbox exited with status {status} before printing its URL"
            )
        return box["line"]

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.control + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def state(self):
        """`GET /_sandbox/state`: feedback, uploads, requests, pending_faults."""
        return self._call("GET", "/state")

    def inject(self, *faults):
        """`POST /_sandbox/faults`: each API request takes the next fault."""
        return self._call("POST", "/faults", list(faults))

    def configure(self, **settings):
        """`POST /_sandbox/config`, e.g. rate_limit_per_sec=None."""
        return self._call("POST", "/config", settings)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def sandbox():
    sb = Sandbox()
    # The client paces itself; the sandbox's own limit would only add
    # timing-dependent 429s to tests that are not about rate limits.
    sb.configure(rate_limit_per_sec=None)
    yield sb
    sb.stop()


@pytest.fixture
def abc_sandbox():
    """An ABC User Feedback sandbox: project 1, channel 1, key `sandbox-key`."""
    sb = Sandbox("abc")
    yield sb
    sb.stop()


def make_config(outbox, base_url, **overrides):
    """A config for the sandbox with quick retries and no client-side pacing."""
    fields = dict(
        outbox_dir=str(outbox),
        base_url=base_url,
        project_key="WidgetPro",
        feedback_type_key="Mobile",
        api_key=API_KEY,
        app=fr.AppInfo(name="pytest", version="1.0", build="7"),
        policy=fr.Policy(
            retry_base=timedelta(milliseconds=10),
            retry_max=timedelta(milliseconds=50),
            max_requests_per_sec=0,
            request_timeout=timedelta(seconds=10),
        ),
    )
    fields.update(overrides)
    return fr.Config(**fields)


@pytest.fixture
def client(tmp_path, sandbox):
    c = fr.FieldReportClient(make_config(tmp_path / "outbox", sandbox.base_url))
    yield c
    c.close()


class Recorder:
    """A DeliveryListener that keeps every event and lets a test wait for one."""

    def __init__(self):
        self.events = []
        self._cond = threading.Condition()

    def on_event(self, event):
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout=20):
        with self._cond:
            ok = self._cond.wait_for(
                lambda: any(predicate(e) for e in self.events), timeout=timeout
            )
        assert ok, f"no matching event within {timeout}s; got {self.events}"
        return next(e for e in self.events if predicate(e))


@pytest.fixture
def recorder():
    return Recorder()
