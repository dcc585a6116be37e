"""Property-based (hypothesis) tests of hostile input through the bindings.

The promise under test (uniffi.udl, README.md): bad input is refused with a
specific `FieldReportError` whose message says what is wrong, and it changes
nothing: no panic (that would surface as `fr.InternalError`), no other
exception, no half-written report; the outbox's stats, reports and files are
exactly as before. Accepted input is queued exactly once (a batch given to
`submit_many`, whole or not at all). Python text the
binding cannot encode as UTF-8 (lone surrogates) never reaches the library:
it must fail with a plain `UnicodeEncodeError`, again changing nothing.

Where the rules are documented (blank or multi-line summary, NUL characters,
length limits, JSON field values, attachment names and sources), the tests
also know the verdict in advance: input that breaks a rule must be refused
with a reason naming what is wrong, and input that breaks none must be
accepted.

Each example gets its own outbox in a `tempfile` directory made inside the
test body (hypothesis runs a body many times; pytest's function-scoped
`tmp_path` would be shared by every example). Nothing here touches the
network except `test_accepted_retry_policy_keeps_status_calls_working`,
which connects to a closed loopback port.
"""

import contextlib
import gc
import hashlib
import json
import os
import pathlib
import socket
import tempfile
import unicodedata
from collections import namedtuple
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import fieldreport as fr

# Hypothesis keeps caches (Unicode tables, constants) in ./.hypothesis by
# default: keep them in this package's ignored build directory instead of
# wherever pytest was started from.
set_hypothesis_home_dir(pathlib.Path(__file__).resolve().parents[1] / "build" / "hypothesis")


def fuzz(max_examples):
    """Modest example counts and no deadline: the disk is slow and noisy."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# ---------------------------------------------------------------------------
# The library's rules, restated (src/client.rs, src/config.rs)
# ---------------------------------------------------------------------------

# Rust's `char::is_whitespace` (Unicode White_Space), which `str::trim` strips.
# Python's str.strip() differs (it also strips U+001C..U+001F).
RUST_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)


def rust_trim(s):
    start, end = 0, len(s)
    while start < end and s[start] in RUST_WHITESPACE:
        start += 1
    while end > start and s[end - 1] in RUST_WHITESPACE:
        end -= 1
    return s[start:end]


def is_control(c):
    """Rust's `char::is_control`: general category Cc."""
    return unicodedata.category(c) == "Cc"


def has_lone_surrogate(s):
    """True when `s` holds a surrogate that is not half of a valid pair."""
    try:
        s.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return True
    return False


def join_pairs(s):
    """What a JSON parser makes of `\\ud83d\\ude00`: one character."""
    return s.encode("utf-16", "surrogatepass").decode("utf-16")


MAX_SUMMARY_CHARS = 1_000
MAX_DESCRIPTION_CHARS = 100_000
MAX_SUBMITTER_CHARS = 320
MAX_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024
MAX_ATTACHMENTS = 32
# Extra fields may not replace the checked standard ones.
STANDARD_FIELDS = ("summary", "description", "submitter")

def summary_breaks_rules(summary):
    return (
        rust_trim(summary) == ""
        or "\n" in summary
        or "\r" in summary
        or "\0" in summary
        or len(summary) > MAX_SUMMARY_CHARS
    )


def text_rules(summary, description, submitter):
    """The rules broken by a report's own text, as the words naming them."""
    why = set()
    if summary_breaks_rules(summary):
        why.add("summary")
    if description is not None and (
        "\0" in description or len(description) > MAX_DESCRIPTION_CHARS
    ):
        why.add("description")
    if submitter is not None and (
        rust_trim(submitter) == ""
        or "\0" in submitter
        or len(submitter) > MAX_SUBMITTER_CHARS
    ):
        why.add("submitter")
    return why


def json_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from json_strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from json_strings(v)


class KeysCollide(Exception):
    pass


def joined_value(value):
    """`value` as the library's JSON parser sees it (surrogate pairs joined)."""
    if isinstance(value, str):
        return join_pairs(value)
    if isinstance(value, list):
        return [joined_value(v) for v in value]
    if isinstance(value, dict):
        out = {join_pairs(k): joined_value(v) for k, v in value.items()}
        if len(out) != len(value):
            raise KeysCollide  # "\ud83d\ude00" and the emoji itself
        return out
    return value


def value_verdict(kind, payload):
    """'reject', 'accept' or 'either' for a field's json_value."""
    if kind == "value":
        if any(has_lone_surrogate(s) for s in json_strings(payload)):
            return "reject"  # "\ud800" is not valid JSON text for the library
        try:
            seen = joined_value(payload)
        except KeysCollide:
            return "either"
        size = len(json.dumps(seen, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_FIELD_BYTES:
            return "reject"
        if isinstance(seen, str) and "\0" in seen:
            return "reject"
        if any("\0" in s for s in json_strings(seen)):
            return "either"  # NUL nested in a list or object: not specified
        return "accept"
    if kind == "big":  # a string of `payload` ASCII letters
        return "reject" if payload + 2 > MAX_FIELD_BYTES else "accept"
    if kind == "deep":  # `payload` nested arrays
        return "accept" if payload <= 100 else "reject" if payload > 128 else "either"
    # Raw text: what Python's parser refuses, the library's refuses too.
    try:
        json.loads(payload)
    except (ValueError, RecursionError):
        return "reject"
    return "either"


def fields_rules(fields):
    """(why, unsure) for a list of (name, json_value, verdict)."""
    why, unsure = set(), False
    if len(fields) > MAX_FIELDS:
        why.add("field")
    seen = set()
    for name, _, verdict in fields:
        if (
            rust_trim(name) == ""
            or len(name.encode()) > 128
            or any(is_control(c) for c in name)
            or name in seen
            or name in STANDARD_FIELDS
        ):
            why.add("field")
        seen.add(name)
        if verdict == "reject":
            why.add("field")
        elif verdict == "either":
            unsure = True
    return why, unsure


def feedback_rules(summary, description, submitter, fields):
    """(why, unsure) for a Feedback: the words naming the broken rules, and
    whether a field value's fate is unknown (then "field" may be refused)."""
    why = text_rules(summary, description, submitter)
    field_why, unsure = fields_rules(fields)
    return why | field_why, unsure


def crash_rules(text, summary, description, submitter, file_name, fields):
    """(why, unsure) for a CrashReport from text."""
    why = set()
    if rust_trim(text) == "":
        why.add("crash log")
    if summary is not None and summary_breaks_rules(rust_trim(summary)):
        why.add("summary")
    why |= text_rules("ok", description, submitter)
    if file_name_breaks_rules(crash_file_name(file_name)):
        why.add("file name")
    field_why, unsure = fields_rules(fields)
    return why | field_why, unsure


def crash_file_name(file_name):
    return (file_name if file_name is not None else "crash.log") + ".gz"


def assert_names_the_problem(error, why, unsure, what):
    """An InvalidInput for a report whose broken rules are `why`."""
    assert isinstance(error, fr.FieldReportError.InvalidInput), repr(error)
    assert why or unsure, f"valid {what} refused: {error!r}"
    named = why | ({"field"} if unsure else set())
    assert any(w in error.reason for w in named), (
        f"the reason does not say what is wrong ({sorted(named)}): {error.reason!r}"
    )


def file_name_breaks_rules(name):
    return (
        rust_trim(name) == ""
        or len(name.encode()) > 255
        or any(c in name for c in "/\\\0")
        or any(is_control(c) for c in name)
    )


def path_segment_breaks_rules(value):
    return (
        value in ("", ".", "..")
        or not all((c.isascii() and c.isalnum()) or c in "-_." for c in value)
    )


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

CHARS = st.characters(exclude_categories=["Cs"])  # all UTF-8 can carry
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
NASTY = [
    "", " ", "\t", "\n", "\r", "\r\n", "\x00", "\x07", "\x1b[2J", "\x7f",
    "\x85", "\xa0", "\u2028", "\u3000", "\ufeff", "\u202e", "\U0001F600",
    "e\u0301", "'; DROP TABLE reports; --", "%s%n%x", "{}", "[]", "null",
    '"', "\\", "../..", "<a>&amp;",
    "\xed\xa0\x80",  # a surrogate's UTF-8 bytes, read as Latin-1
]


def pieces(chars=CHARS):
    return st.lists(
        st.one_of(st.sampled_from(NASTY), st.text(chars, max_size=30)), max_size=6
    ).map("".join)


def repeated(lengths):
    """Long text: a short unit repeated to exactly a length from `lengths`."""
    return st.builds(
        lambda unit, n: (unit * (n // len(unit) + 1))[:n],
        st.text(CHARS, min_size=1, max_size=5),
        lengths,
    )


def hostile_text(edges, most=300_000):
    """Short nasty text, or long text at the limits or up to `most` chars."""
    return st.one_of(
        pieces(),
        repeated(st.one_of(st.sampled_from(edges), st.integers(0, most))),
    )


SUMMARY = hostile_text([1, MAX_SUMMARY_CHARS, MAX_SUMMARY_CHARS + 1, 5_000])
DESCRIPTION = st.none() | hostile_text(
    [MAX_DESCRIPTION_CHARS - 1, MAX_DESCRIPTION_CHARS, MAX_DESCRIPTION_CHARS + 1]
)
SUBMITTER = st.none() | hostile_text([MAX_SUBMITTER_CHARS, MAX_SUBMITTER_CHARS + 1], 2_000)

# JSON text from json.dumps is ASCII: surrogates, lone or paired, travel as
# \ud800 escapes and reach the library's parser.
JSON_TEXT = st.one_of(
    st.text(CHARS, max_size=20),
    st.sampled_from(NASTY),
    st.builds(
        lambda a, s, b: a + s + b, st.text(CHARS, max_size=5), SURROGATE, st.text(CHARS, max_size=5)
    ),
    st.just("\ud83d\ude00"),  # a valid pair, as two code points
)
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), JSON_TEXT)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(JSON_TEXT, kids, max_size=4),
    max_leaves=10,
)


def tagged_json():
    """(json_value text, verdict) pairs."""
    return st.one_of(
        JSON_VALUE.map(lambda v: ("value", v)),
        st.sampled_from(
            [MAX_FIELD_BYTES - 3, MAX_FIELD_BYTES - 2, MAX_FIELD_BYTES - 1, 200_000]
        ).map(lambda n: ("big", n)),
        st.sampled_from([1, 50, 100, 129, 1_000, 100_000]).map(lambda n: ("deep", n)),
        pieces().map(lambda t: ("raw", t)),
    ).map(lambda kp: (encode_json(*kp), value_verdict(*kp)))


def encode_json(kind, payload):
    if kind == "value":
        return json.dumps(payload)  # ASCII: surrogates travel as \ud800
    if kind == "big":
        return json.dumps("x" * payload)
    if kind == "deep":
        return "[" * payload + "]" * payload
    return payload


FIELD_NAME = st.one_of(
    st.sampled_from(["topic", "severity", "title", "summary", "description"]),
    pieces(),
    repeated(st.sampled_from([128, 129, 1_000])),
)
FIELD = st.builds(lambda name, jv: (name, jv[0], jv[1]), FIELD_NAME, tagged_json())
FIELDS = st.one_of(
    st.lists(FIELD, max_size=5),
    # Around the count limit, with distinct valid names and values.
    st.integers(MAX_FIELDS - 1, MAX_FIELDS + 2).map(
        lambda n: [(f"f{i}", str(i), "accept") for i in range(n)]
    ),
)


def corrupting(draw, valid, hostile, most=2):
    """`valid` with up to `most` of its entries drawn from `hostile` instead."""
    names = draw(st.sets(st.sampled_from(sorted(hostile)), max_size=most))
    return {**valid, **{n: draw(hostile[n]) for n in names}}, names


def as_fields(fields):
    return [fr.Field(name=n, json_value=j) for n, j, _ in fields]


# ---------------------------------------------------------------------------
# Outboxes and what "unchanged" means
# ---------------------------------------------------------------------------

SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
DB_NAME = "outbox.sqlite"
# The library's empty lock files: made by open (ingest) and the first flush.
LOCK_FILES = ("ingest.lock", "flush.lock")

Snapshot = namedtuple("Snapshot", "stats reports files")


def config_for(outbox, **overrides):
    fields = dict(
        outbox_dir=str(outbox),
        base_url="https://feedback.invalid/api/v1",  # never contacted
        project_key="WidgetPro",
        feedback_type_key="Mobile",
        api_key="hostile-test-key",
    )
    fields.update(overrides)
    return fr.Config(**fields)


def outbox_files(outbox):
    """Every entry but SQLite's side files and the library's lock files, with
    the sizes of all but the database (whose content the snapshot compares)."""
    entries = set()
    for root, dirs, files in os.walk(outbox):
        for name in dirs:
            entries.add((os.path.relpath(os.path.join(root, name), outbox), "dir"))
        for name in files:
            if name.endswith(SQLITE_SIDE_FILES) or name in LOCK_FILES:
                continue
            path = os.path.join(root, name)
            size = None if name == DB_NAME else os.path.getsize(path)
            entries.add((os.path.relpath(path, outbox), size))
    return frozenset(entries)


def tree(directory):
    """Every path under `directory` (to check that nothing was created)."""
    return sorted(
        os.path.relpath(os.path.join(root, name), directory)
        for root, dirs, files in os.walk(directory)
        for name in dirs + files
    )


def assert_specific(error):
    """A FieldReportError whose message says something."""
    assert isinstance(error, fr.FieldReportError), repr(error)
    assert str(error).strip(), f"{type(error).__name__} carries no message"
    if hasattr(error, "reason"):
        assert error.reason.strip(), f"{error!r}: empty reason"


class Box:
    """A client on its own outbox, holding one report from before."""

    def __init__(self, client, outbox, tmp, seed=True):
        self.client, self.outbox, self.tmp = client, outbox, tmp
        self.seed_id = None
        if seed:
            self.seed_id = client.submit(
                fr.Feedback(
                    summary="already queued",
                    attachments=[
                        fr.Attachment(element_key="Log", data=b"seed", file_name="seed.log")
                    ],
                )
            )

    def snapshot(self):
        s = self.client.stats()
        stats = (
            s.pending, s.delivered, s.dead, s.bytes, s.evicted, s.evicted_feedback,
            s.ambiguous_resends, s.paused_for_auth, s.consent, s.moved_aside,
            s.next_attempt_at, s.last_error,
        )
        reports = tuple(
            (
                r.id, r.seq, r.client_id, r.kind, r.state, r.summary, r.submitted_at,
                r.attempts, r.next_attempt_at, r.context_json,
                tuple(
                    (a.element_key, a.file_name, a.content_type, a.size, a.sha256, a.state)
                    for a in r.attachments
                ),
            )
            for r in self.client.reports(fr.ReportFilter())
        )
        return Snapshot(stats, reports, outbox_files(self.outbox))

    def attempt(self, call, report):
        """Submits; returns the new report's status, or the error it raised.

        Any exception but a FieldReportError propagates and fails the test.
        """
        before = self.snapshot()
        try:
            report_id = call(report)
        except fr.FieldReportError as e:
            event(f"refused: {type(e).__name__}")
            assert_specific(e)
            assert self.snapshot() == before, f"refused with {e!r}, yet the outbox changed"
            return e
        event("accepted")
        after = self.snapshot()
        # Queued exactly once, and nothing else touched.
        assert after.stats[0] == before.stats[0] + 1, "pending did not grow by one"
        ids = [r[0] for r in after.reports]
        assert ids.count(report_id) == 1
        assert [r for r in after.reports if r[0] != report_id] == list(before.reports)
        status = self.client.report(report_id)
        # One copy per attachment, next to the untouched older files.
        assert before.files <= after.files
        new_files = [f for f in after.files - before.files if f[1] != "dir"]
        assert len(new_files) == len(status.attachments), new_files
        assert sorted(f[1] for f in new_files) == sorted(a.size for a in status.attachments)
        return status


@contextlib.contextmanager
def fresh_box():
    """A Box in a new temporary directory. Durability NORMAL spares the slow
    disk an fsync per submit; the policy test covers FULL as well."""
    with tempfile.TemporaryDirectory(prefix="fieldreport-hostile-") as tmp:
        tmp = pathlib.Path(tmp)
        outbox = tmp / "outbox"
        policy = fr.Policy(durability=fr.Durability.NORMAL)
        client = fr.FieldReportClient(config_for(outbox, policy=policy))
        try:
            yield Box(client, outbox, tmp)
        finally:
            client.close()


# ---------------------------------------------------------------------------
# Report text
# ---------------------------------------------------------------------------


@fuzz(150)
@given(summary=SUMMARY, description=DESCRIPTION, submitter=SUBMITTER, fields=FIELDS)
@example(summary="two\nlines", description=None, submitter=None, fields=[])
@example(summary="nul\0inside", description="", submitter=None, fields=[])
@example(summary="ok", description="d\0", submitter=" ", fields=[("f", '"\\u0000"', "reject")])
# Every limit, at it and just past it.
@example(
    summary="s" * MAX_SUMMARY_CHARS,
    description="d" * MAX_DESCRIPTION_CHARS,
    submitter="u" * MAX_SUBMITTER_CHARS,
    fields=[("n" * 128, encode_json("big", MAX_FIELD_BYTES - 2), "accept")],
)
@example(summary="s" * (MAX_SUMMARY_CHARS + 1), description=None, submitter=None, fields=[])
@example(summary="s", description="d" * (MAX_DESCRIPTION_CHARS + 1), submitter=None, fields=[])
@example(summary="s", description=None, submitter="u" * (MAX_SUBMITTER_CHARS + 1), fields=[])
@example(summary="s", description=None, submitter=None, fields=[("n" * 129, "1", "accept")])
@example(
    summary="s",
    description=None,
    submitter=None,
    fields=[("f", encode_json("big", MAX_FIELD_BYTES - 1), "reject")],
)
@example(
    summary="s",
    description=None,
    submitter=None,
    fields=[(f"f{i}", "1", "accept") for i in range(MAX_FIELDS)],
)
@example(
    summary="s",
    description=None,
    submitter=None,
    fields=[(f"f{i}", "1", "accept") for i in range(MAX_FIELDS + 1)],
)
def test_feedback_text_is_queued_once_or_refused_cleanly(summary, description, submitter, fields):
    why, unsure = feedback_rules(summary, description, submitter, fields)
    feedback = fr.Feedback(
        summary=summary, description=description, submitter=submitter, fields=as_fields(fields)
    )
    with fresh_box() as box:
        outcome = box.attempt(box.client.submit, feedback)
    if isinstance(outcome, fr.FieldReportError):
        assert_names_the_problem(outcome, why, unsure, "feedback")
    else:
        assert not why, f"accepted although it breaks the rules on {sorted(why)}"
        assert outcome.kind == fr.ReportKind.FEEDBACK
        assert outcome.state == fr.ReportState.QUEUED
        assert outcome.summary == rust_trim(summary)
        assert outcome.attachments == []
        assert isinstance(json.loads(outcome.context_json), dict)


CRASH_TEXT = hostile_text([0, 1, 64 * 1024, 64 * 1024 + 1])
CRASH_FILE_NAME = (
    st.none() | st.sampled_from(["render.log", "a/b", "x" * 252, "x" * 253]) | pieces()
)


@fuzz(100)
@given(
    text=CRASH_TEXT,
    summary=st.none() | SUMMARY,
    description=DESCRIPTION,
    submitter=SUBMITTER,
    file_name=CRASH_FILE_NAME,
    fields=st.lists(FIELD, max_size=3),
)
@example(text=" \n\t", summary=None, description=None, submitter=None, file_name=None, fields=[])
@example(
    text="boom", summary=None, description=None, submitter=None, file_name="x" * 252, fields=[]
)
@example(
    text="boom", summary=None, description=None, submitter=None, file_name="x" * 253, fields=[]
)
@example(text="boom\0", summary=None, description=None, submitter=None, file_name="..", fields=[])
def test_crash_text_is_queued_once_or_refused_cleanly(
    text, summary, description, submitter, file_name, fields
):
    why, unsure = crash_rules(text, summary, description, submitter, file_name, fields)
    crash = fr.CrashReport(
        text=text,
        summary=summary,
        description=description,
        submitter=submitter,
        file_name=file_name,
        fields=as_fields(fields),
    )
    with fresh_box() as box:
        outcome = box.attempt(box.client.submit_crash, crash)
    if isinstance(outcome, fr.FieldReportError):
        assert_names_the_problem(outcome, why, unsure, "crash report")
    else:
        assert not why, f"accepted although it breaks the rules on {sorted(why)}"
        assert outcome.kind == fr.ReportKind.CRASH
        if summary is not None:
            assert outcome.summary == rust_trim(summary)
        assert rust_trim(outcome.summary) and not summary_breaks_rules(outcome.summary)
        [log] = outcome.attachments
        assert log.file_name == crash_file_name(file_name)
        assert log.element_key == "CrashLog" and log.content_type == "application/gzip"


BATCH_ITEM = st.one_of(
    st.sampled_from(["fine", "also fine"]).map(
        lambda s: ("feedback", dict(summary=s, description=None, submitter=None, fields=[]))
    ),
    st.fixed_dictionaries(
        dict(
            summary=SUMMARY,
            description=DESCRIPTION,
            submitter=SUBMITTER,
            fields=st.lists(FIELD, max_size=3),
        )
    ).map(lambda kw: ("feedback", kw)),
    st.fixed_dictionaries(
        dict(
            text=CRASH_TEXT,
            summary=st.none() | SUMMARY,
            description=DESCRIPTION,
            submitter=SUBMITTER,
            file_name=CRASH_FILE_NAME,
            fields=st.lists(FIELD, max_size=2),
        )
    ).map(lambda kw: ("crash", kw)),
)


def submission(kind, kw):
    kw = {**kw, "fields": as_fields(kw["fields"])}
    if kind == "feedback":
        return fr.Submission.FEEDBACK(fr.Feedback(**kw))
    return fr.Submission.CRASH(fr.CrashReport(**kw))


@pytest.mark.skipif(
    not hasattr(fr.FieldReportClient, "submit_many"), reason="no submit_many in this build"
)
@fuzz(60)
@given(items=st.lists(BATCH_ITEM, max_size=4))
def test_batches_are_queued_whole_or_refused_cleanly(items):
    rules = [
        feedback_rules(**kw) if kind == "feedback" else crash_rules(**kw) for kind, kw in items
    ]
    with fresh_box() as box:
        before = box.snapshot()
        try:
            ids = box.client.submit_many([submission(*item) for item in items])
        except fr.FieldReportError as e:
            event(f"refused: {type(e).__name__}")
            assert_specific(e)
            assert box.snapshot() == before, f"refused with {e!r}, yet the outbox changed"
            # "batch item N: <the reason for that report>"
            suspects = [i for i, (why, unsure) in enumerate(rules) if why or unsure]
            assert suspects, f"valid batch refused: {e!r}"
            named = [i for i in suspects if e.reason.startswith(f"batch item {i}: ")]
            assert named, f"the reason names none of items {suspects}: {e.reason!r}"
            assert_names_the_problem(e, *rules[named[0]], "report")
            return
        event("accepted")
        assert not any(why for why, _ in rules), f"accepted although items break rules: {rules}"
        after = box.snapshot()
        assert len(ids) == len(set(ids)) == len(items) and ids == sorted(ids)
        assert after.stats[0] == before.stats[0] + len(items)
        assert {r[0] for r in after.reports} == {r[0] for r in before.reports} | set(ids)
        assert [r for r in after.reports if r[0] not in ids] == list(before.reports)
        for report_id, (kind, kw) in zip(ids, items):
            status = box.client.report(report_id)
            if kind == "feedback":
                assert status.kind == fr.ReportKind.FEEDBACK
                assert status.summary == rust_trim(kw["summary"])
            else:
                assert status.kind == fr.ReportKind.CRASH
                [log] = status.attachments
                assert log.file_name == crash_file_name(kw["file_name"])


# ---------------------------------------------------------------------------
# Lone surrogates: refused by the binding itself
# ---------------------------------------------------------------------------

SURROGATE_TEXT = st.builds(lambda a, s, b: a + s + b, pieces(), SURROGATE, pieces())

# Where a lone surrogate goes: each makes one call on a client.
SUBMIT_TARGETS = {
    "summary": lambda c, t, p: c.submit(fr.Feedback(summary=t)),
    "description": lambda c, t, p: c.submit(fr.Feedback(summary="s", description=t)),
    "submitter": lambda c, t, p: c.submit(fr.Feedback(summary="s", submitter=t)),
    "field name": lambda c, t, p: c.submit(
        fr.Feedback(summary="s", fields=[fr.Field(name=t, json_value="1")])
    ),
    "field value": lambda c, t, p: c.submit(
        fr.Feedback(
            summary="s",
            fields=[fr.Field(name="f", json_value=json.dumps(t, ensure_ascii=False))],
        )
    ),
    "element key": lambda c, t, p: c.submit(
        fr.Feedback(
            summary="s", attachments=[fr.Attachment(element_key=t, data=b"x", file_name="x")]
        )
    ),
    "file name": lambda c, t, p: c.submit(
        fr.Feedback(
            summary="s", attachments=[fr.Attachment(element_key="Log", data=b"x", file_name=t)]
        )
    ),
    "content type": lambda c, t, p: c.submit(
        fr.Feedback(
            summary="s",
            attachments=[
                fr.Attachment(element_key="Log", data=b"x", file_name="x", content_type=t)
            ],
        )
    ),
    "attachment path": lambda c, t, p: c.submit(
        fr.Feedback(
            summary="s", attachments=[fr.Attachment(element_key="Log", path=str(p / t))]
        )
    ),
    "crash text": lambda c, t, p: c.submit_crash(fr.CrashReport(text=t)),
    "crash summary": lambda c, t, p: c.submit_crash(fr.CrashReport(text="boom", summary=t)),
    "crash path": lambda c, t, p: c.submit_crash(fr.CrashReport(path=str(p / t))),
    "crash file name": lambda c, t, p: c.submit_crash(fr.CrashReport(text="boom", file_name=t)),
    "api key": lambda c, t, p: c.set_api_key(t),
}
if hasattr(fr, "Submission"):
    SUBMIT_TARGETS["batch"] = lambda c, t, p: c.submit_many(
        [
            fr.Submission.FEEDBACK(fr.Feedback(summary="fine")),
            fr.Submission.CRASH(fr.CrashReport(text=t)),
        ]
    )

CONFIG_TARGETS = {
    "outbox_dir": lambda o, t: config_for(o / t),
    "base_url": lambda o, t: config_for(o, base_url="https://h.example/" + t),
    "company": lambda o, t: config_for(o, base_url=None, company=t),
    "project_key": lambda o, t: config_for(o, project_key=t),
    "api_key": lambda o, t: config_for(o, api_key=t),
    "app name": lambda o, t: config_for(o, app=fr.AppInfo(name=t)),
    "context field": lambda o, t: config_for(o, context_fields={"os": t}),
}


@fuzz(60)
@given(where=st.sampled_from(sorted(SUBMIT_TARGETS) + sorted(CONFIG_TARGETS)), text=SURROGATE_TEXT)
def test_lone_surrogates_raise_a_clean_python_error(where, text):
    with fresh_box() as box:
        if where in SUBMIT_TARGETS:
            before = box.snapshot()
            with pytest.raises(UnicodeEncodeError):
                SUBMIT_TARGETS[where](box.client, text, box.tmp)
            assert box.snapshot() == before
            # The client still works.
            box.attempt(box.client.submit, fr.Feedback(summary="after the refusal"))
            assert box.client.stats().pending == 2
        else:
            with pytest.raises(UnicodeEncodeError):
                fr.FieldReportClient(CONFIG_TARGETS[where](box.tmp / "other", text))
            assert not (box.tmp / "other").exists(), "a refused config created files"


def open_files_under(directory):
    """This process's open file descriptors on files under `directory`."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)"
)


@needs_proc
def test_dropping_a_client_closes_its_outbox():
    # The control for the next test: the check below does see a dropped client.
    with tempfile.TemporaryDirectory() as tmp:
        outbox = pathlib.Path(tmp) / "outbox"
        client = fr.FieldReportClient(config_for(outbox))
        client.submit(fr.Feedback(summary="ok"))
        assert open_files_under(outbox), "the open client should hold its database"
        del client
        gc.collect()
        assert open_files_under(outbox) == []


@needs_proc
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="uniffi 0.32 (upstream, mozilla/uniffi-rs#195): the generated method "
    "clones the object handle before lowering its arguments; a UnicodeEncodeError "
    "while lowering leaks that clone, so the Rust client (database, background "
    "sender) outlives every Python reference until close() is called",
)
def test_surrogate_refusal_does_not_leak_the_client():
    with tempfile.TemporaryDirectory() as tmp:
        outbox = pathlib.Path(tmp) / "outbox"
        client = fr.FieldReportClient(config_for(outbox))
        client.submit(fr.Feedback(summary="ok"))
        with pytest.raises(UnicodeEncodeError):
            client.submit(fr.Feedback(summary="\ud800"))
        assert open_files_under(outbox), "the open client should hold its database"
        del client
        gc.collect()
        assert open_files_under(outbox) == [], "dropping the client left its outbox open"


# ---------------------------------------------------------------------------
# Attachments
# ---------------------------------------------------------------------------

BAD_PATHS = [
    "missing", "missing-dir/file", "dir", "dir/", "fifo", "link-to-dev-zero",
    "dangling-link", "link-loop", "file/", "file/below", "long-name", "long-path",
    "", "\0", "file-nul", "/dev/null", "/dev/zero", "/proc/self/mem",
]


def bad_path(kind, tmp):
    """Makes (when needed) and returns a path that is no readable regular file."""
    good = tmp / "file"
    good.write_bytes(b"readable")
    made = {
        "missing": lambda: tmp / "nope.log",
        "missing-dir/file": lambda: tmp / "nope" / "x.log",
        "dir": lambda: tmp,
        "dir/": lambda: f"{tmp}/",
        "fifo": lambda: (os.mkfifo(tmp / "fifo"), tmp / "fifo")[1],
        "link-to-dev-zero": lambda: (os.symlink("/dev/zero", tmp / "z"), tmp / "z")[1],
        "dangling-link": lambda: (os.symlink(tmp / "gone", tmp / "d"), tmp / "d")[1],
        "link-loop": lambda: (os.symlink(tmp / "loop", tmp / "loop"), tmp / "loop")[1],
        "file/": lambda: f"{good}/",
        "file/below": lambda: good / "below",
        "long-name": lambda: tmp / ("n" * 300),
        "long-path": lambda: tmp / ("d/" * 3000 + "x"),
        "file-nul": lambda: f"{good}\0.png",
    }
    path = made[kind]() if kind in made else kind
    return str(path)


VALID_ATTACHMENT = st.one_of(
    st.binary(max_size=2048).map(lambda b: ("data", b)),
    st.just(("path", None)),
)


def valid_attachments(specs, tmp):
    out = []
    for i, (kind, data) in enumerate(specs):
        if kind == "data":
            out.append(fr.Attachment(element_key="Log", data=data, file_name=f"ok-{i}.bin"))
        else:
            path = tmp / f"ok-{i}.txt"
            path.write_bytes(b"a readable file\n" * 100)
            out.append(fr.Attachment(element_key="Log", path=str(path)))
    return out


@fuzz(100)
@given(
    kind=st.sampled_from(
        [k for k in BAD_PATHS if not k.startswith("/") or os.path.exists(k)]
    ),
    where=st.sampled_from(["feedback", "crash log", "crash attachment"]),
    named=st.booleans(),
    before=st.lists(VALID_ATTACHMENT, max_size=3),
    after=st.lists(VALID_ATTACHMENT, max_size=2),
)
def test_attachment_paths_are_refused_cleanly(kind, where, named, before, after):
    with fresh_box() as box:
        sources = box.tmp / "sources"
        sources.mkdir()
        path = bad_path(kind, sources)
        bad = fr.Attachment(element_key="Log", path=path, file_name="given.log" if named else None)
        others = valid_attachments(before, sources), valid_attachments(after, sources)
        attachments = others[0] + [bad] + others[1]
        if where == "feedback":
            call, report = box.client.submit, fr.Feedback(summary="s", attachments=attachments)
        elif where == "crash log":
            call, report = box.client.submit_crash, fr.CrashReport(
                path=path, attachments=others[0] + others[1]
            )
        else:
            call, report = box.client.submit_crash, fr.CrashReport(
                text="boom", attachments=attachments
            )
        outcome = box.attempt(call, report)
    assert isinstance(outcome, fr.FieldReportError), f"{path!r} was accepted"
    if where == "crash log" or named:
        # The path is all that is wrong.
        assert isinstance(outcome, fr.FieldReportError.AttachmentUnreadable), repr(outcome)
    else:
        # Without a file name it is taken from the path, which may be the problem.
        assert isinstance(
            outcome,
            (fr.FieldReportError.AttachmentUnreadable, fr.FieldReportError.InvalidInput),
        ), repr(outcome)
        if isinstance(outcome, fr.FieldReportError.InvalidInput):
            assert "file name" in outcome.reason, outcome.reason


ELEMENT_KEY = st.one_of(
    st.sampled_from(["Screenshot", "Log", "a.b-c_d", ".", "..", "", "a/b", "a b", "Ünï"]),
    pieces(),
)
FILE_NAME = st.one_of(
    st.none(),
    st.sampled_from(
        ["a.png", "crash.log", ".", "..", "", " ", "a/b", "a\\b", "x" * 255, "x" * 256,
         "\u00e9" * 127, "\u00e9" * 128, "a\0b", "noext"]
    ),
    pieces(),
)
TCHAR = set("!#$%&'*+-.^_`|~")


def media_type_ok(t):
    """type/subtype of HTTP token characters, then ;parameters without
    control characters; no whitespace around it; at most 200 bytes."""
    if len(t.encode()) > 200 or t != t.strip():
        return False
    essence, sep, params = t.partition(";")
    if sep and any(is_control(c) for c in params):
        return False
    kind, slash, sub = essence.rstrip().partition("/")

    def token(s):
        return bool(s) and all(c.isascii() and (c.isalnum() or c in TCHAR) for c in s)

    return bool(slash) and token(kind) and token(sub)


CONTENT_TYPE = st.one_of(
    st.none(),
    st.sampled_from(
        ["image/png", "text/plain; charset=utf-8", "png", "", "a/b\n", "x/" + "y" * 198,
         "x/" + "y" * 199, " /", "/", "a/b ", "a b/c"]
    ),
    pieces(),
)


@st.composite
def attachment_spec(draw):
    """(element_key, file_name, content_type, data), some of it hostile."""
    valid = {"element_key": "Log", "file_name": "a.png", "content_type": None}
    hostile = {"element_key": ELEMENT_KEY, "file_name": FILE_NAME, "content_type": CONTENT_TYPE}
    spec, _ = corrupting(draw, valid, hostile)
    data = draw(st.binary(max_size=4096))
    return spec["element_key"], spec["file_name"], spec["content_type"], data


ATTACHMENT = attachment_spec()
ATTACHMENTS = st.one_of(
    st.lists(ATTACHMENT, min_size=1, max_size=4),
    st.integers(MAX_ATTACHMENTS - 1, MAX_ATTACHMENTS + 1).map(
        lambda n: [("Log", f"a{i}.txt", None, b"x") for i in range(n)]
    ),
)


@fuzz(100)
@given(specs=ATTACHMENTS)
# The limits, at them and just past them (file names count bytes).
@example(specs=[("Log", "x" * 255, "x/" + "y" * 198, b"")])
@example(specs=[("Log", "x" * 256, None, b"")])
@example(specs=[("Log", "\u00e9" * 127, None, b"")])
@example(specs=[("Log", "\u00e9" * 128, None, b"")])
@example(specs=[("Log", "a.png", "x/" + "y" * 199, b"")])
@example(specs=[("..", "a.png", None, b"")])
@example(specs=[("Log", None, None, b"x")])
def test_attachment_metadata_is_queued_once_or_refused_cleanly(specs):
    why = set()
    if len(specs) > MAX_ATTACHMENTS:
        why.add("attachments")
    for element_key, file_name, content_type, _ in specs:
        if path_segment_breaks_rules(element_key):
            why.add("element_key")
        if file_name is None or file_name_breaks_rules(file_name):
            why.add("file name")
        if content_type is not None and not media_type_ok(content_type):
            why.add("content type")
    attachments = [
        fr.Attachment(element_key=k, data=d, file_name=n, content_type=t) for k, n, t, d in specs
    ]
    with fresh_box() as box:
        outcome = box.attempt(box.client.submit, fr.Feedback(summary="s", attachments=attachments))
    if isinstance(outcome, fr.FieldReportError):
        assert isinstance(outcome, fr.FieldReportError.InvalidInput), repr(outcome)
        assert why, f"valid attachments refused: {outcome!r}"
        assert any(w in outcome.reason for w in why), (sorted(why), outcome.reason)
    else:
        assert not why, f"accepted although it breaks the rules on {sorted(why)}"
        got = sorted(
            (a.element_key, a.file_name, a.size, a.sha256, a.state) for a in outcome.attachments
        )
        want = sorted(
            (k, n, len(d), hashlib.sha256(d).hexdigest(), fr.AttachmentState.PENDING)
            for k, n, _, d in specs
        )
        assert got == want
        for a in outcome.attachments:
            given_types = {t for k, n, t, d in specs if n == a.file_name}
            assert a.content_type in given_types or (None in given_types and a.content_type)


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

KEY_TOKEN = st.binary(min_size=8, max_size=8).map(lambda b: "K" + b.hex())
SEGMENT = st.one_of(
    st.sampled_from(["WidgetPro", "Mobile", "a.b-c_d", ".", "..", "", "a/b", "a b", "Ünï"]),
    pieces(),
)
URL = st.one_of(
    st.tuples(
        st.sampled_from(["https://", "http://", "HTTPS://", "ftp://", "", "http:/", "https:///"]),
        st.sampled_from(["", "user@", "127.0.0.1@", "a:b@", "@"]),
        st.one_of(
            st.sampled_from(
                ["acme.centercode.com", "localhost", "127.0.0.1", "[::1]", "::1",
                 "example.com", "10.0.0.1", "", "h\0st", "\u00fcber.example"]
            ),
            pieces(),
        ),
        st.sampled_from(["", ":8080", ":", ":99999", ":-1"]),
        st.one_of(
            st.sampled_from(["", "/api/v1", "/", "/api/v1/", "?q=1", "#f", "/a b", "/%00"]),
            pieces(),
        ),
    ).map("".join),
    pieces(),
)
CONTEXT_ITEMS = [
    "library_version", "os", "arch", "app_name", "app_version", "app_build",
    "locale", "device_model", "seq", "report_kind",
]
OUTBOX_DIR = st.one_of(
    st.just(("plain", "")),
    pieces().map(lambda name: ("named", name)),
    st.sampled_from(["empty", "file", "below-file", "dev-null", "long"]).map(lambda k: (k, "")),
)


def outbox_dir_for(spec, tmp):
    kind, name = spec
    target = tmp / "target"
    return {
        "plain": lambda: str(target / "outbox"),
        # Slashes replaced: every name stays inside target (".." is target itself).
        "named": lambda: str(target / "box" / name.replace("/", "_")),
        "empty": lambda: "",
        "file": lambda: str(tmp / "a-file"),
        "below-file": lambda: str(tmp / "a-file" / "outbox"),
        "dev-null": lambda: "/dev/null",
        "long": lambda: str(target / ("x" * 300)),
    }[kind]()


VALID_CONFIG = dict(
    outbox_dir=("plain", ""),
    base_url="https://acme.centercode.com/api/v1",
    company=None,
    project_key="WidgetPro",
    feedback_type_key="Mobile",
    api_key=("", "Kfeedfacecafebeef", ""),
    client_id_field=None,
    lookup_key=None,
    app=None,
    context_fields={},
    crash_element_key=None,
)
HOSTILE_CONFIG = dict(
    outbox_dir=OUTBOX_DIR,
    base_url=st.none() | URL,
    company=st.none() | st.sampled_from(["acme", "a-b", "", "a.b"]) | pieces(),
    project_key=SEGMENT,
    feedback_type_key=SEGMENT,
    api_key=st.tuples(pieces(), KEY_TOKEN, pieces()),
    client_id_field=st.none() | SEGMENT,
    lookup_key=st.none() | SEGMENT,
    app=st.builds(
        fr.AppInfo,
        name=st.none() | pieces(),
        version=st.none() | pieces(),
        build=st.none() | pieces(),
        locale=st.none() | pieces(),
        device_model=st.none() | pieces(),
    ),
    context_fields=st.dictionaries(
        st.sampled_from(CONTEXT_ITEMS) | pieces(), pieces(), max_size=3
    ),
    crash_element_key=st.none() | SEGMENT,
)
# What an InvalidConfig reason names when the field is what is wrong.
CONFIG_WORDS = dict(
    outbox_dir=["outbox_dir"],
    base_url=["base URL", "base_url"],
    company=["company", "base URL", "base_url"],
    project_key=["project_key"],
    feedback_type_key=["feedback_type_key"],
    api_key=["api_key"],
    client_id_field=["client_id_field"],
    lookup_key=["lookup_key"],
    app=[],
    context_fields=["context_fields"],
    crash_element_key=["crash_element_key"],
)


@st.composite
def config_spec(draw):
    spec, corrupted = corrupting(draw, VALID_CONFIG, HOSTILE_CONFIG, most=3)
    if "company" in corrupted and "base_url" not in corrupted:
        spec["base_url"] = None  # else the company is not used
    spec["allow_insecure_http"] = draw(st.booleans())
    spec["consent_default"] = draw(st.booleans())
    return spec, corrupted


def config_example(**changes):
    spec = {**VALID_CONFIG, "allow_insecure_http": False, "consent_default": True, **changes}
    return example(spec=(spec, set(changes)))


@fuzz(150)
@given(spec=config_spec())
@config_example(base_url="http://feedback.example.com/api/v1")  # the key in clear text
@config_example(api_key=("\n", "Kfeedfacecafebeef", " "))
@config_example(outbox_dir=("empty", ""))
@config_example(outbox_dir=("file", ""))
@config_example(outbox_dir=("below-file", ""))
@config_example(outbox_dir=("dev-null", ""))
@config_example(outbox_dir=("long", ""))
@config_example(outbox_dir=("named", "nul\0inside"))
def test_config_opens_or_is_refused_without_showing_the_key(spec):
    spec, corrupted = spec
    spec = dict(spec)
    prefix, token, suffix = spec.pop("api_key")
    outbox_dir = spec.pop("outbox_dir")
    app = spec["app"]
    others = [outbox_dir[1], *spec["context_fields"], *spec["context_fields"].values()]
    others += [v for v in spec.values() if isinstance(v, str)]
    if app is not None:
        others += [app.name, app.version, app.build, app.locale, app.device_model]
    assume(not any(token in o for o in others if o))

    with tempfile.TemporaryDirectory(prefix="fieldreport-hostile-") as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "a-file").write_text("not a directory")
        (tmp / "target").mkdir()
        config = fr.Config(
            outbox_dir=outbox_dir_for(outbox_dir, tmp), api_key=prefix + token + suffix, **spec
        )
        for shown in (str(config), repr(config)):
            assert token not in shown
        before = tree(tmp)
        try:
            client = fr.FieldReportClient(config)
        except fr.FieldReportError as e:
            event(f"refused: {type(e).__name__}")
            assert_specific(e)
            for shown in (str(e), repr(e), *map(str, vars(e).values())):
                assert token not in shown, f"the API key shows in {shown!r}"
            if isinstance(e, fr.FieldReportError.InvalidConfig):
                words = [w for name in corrupted for w in CONFIG_WORDS[name]]
                assert any(w in e.reason for w in words), (sorted(corrupted), e.reason)
                assert tree(tmp) == before, "nothing is opened for an invalid config"
            else:
                # Only the directory can make the storage fail.
                assert isinstance(e, fr.FieldReportError.Storage), repr(e)
                assert "outbox_dir" in corrupted, repr(e)
            return
        event("opened")
        try:
            # A config that opens is usable.
            report_id = client.submit(fr.Feedback(summary="probe"))
            assert [r.id for r in client.reports(fr.ReportFilter())] == [report_id]
            assert client.stats().pending == 1
        finally:
            client.close()


U32 = st.one_of(st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1]), st.integers(0, 2**32 - 1))
U64 = st.one_of(
    st.sampled_from([0, 1, 2**31 - 1, 2**32, 2**31 * 1024 - 1, 2**31 * 1024, 2**63, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)
DURATION = st.one_of(
    st.sampled_from(
        [timedelta(0), timedelta(microseconds=1), timedelta(milliseconds=999),
         timedelta(days=24), timedelta(days=25), timedelta.max]
    ),
    st.timedeltas(min_value=timedelta(0)),
)
POLICY_TYPES = {
    "max_reports": U32, "max_bytes": U64, "max_age": DURATION,
    "max_attachment_bytes": U64, "max_attachments": U32, "max_summary_chars": U32,
    "max_description_chars": U32, "max_fields": U32, "max_field_bytes": U32,
    "retry_base": DURATION, "retry_max": DURATION, "max_attempts": U32,
    "max_requests_per_sec": U32, "connect_timeout": DURATION, "request_timeout": DURATION,
    "min_upload_bytes_per_sec": U64, "metered_max_upload_bytes": U64,
    "auth_probe_interval": DURATION, "sender_interval": DURATION,
    "sender_flush_budget": DURATION, "keep_delivered": DURATION,
    "durability": st.sampled_from([fr.Durability.FULL, fr.Durability.NORMAL]),
    # busy_timeout: its own test below.
}


def open_with_policy(policy):
    """Opens an outbox with `policy`; checks the outcome as the config tests do."""
    with tempfile.TemporaryDirectory(prefix="fieldreport-hostile-") as tmp:
        tmp = pathlib.Path(tmp)
        try:
            client = fr.FieldReportClient(config_for(tmp / "outbox", policy=policy))
        except fr.FieldReportError as e:
            event(f"open refused: {type(e).__name__}")
            assert_specific(e)
            assert isinstance(e, fr.FieldReportError.InvalidConfig), repr(e)
            assert "policy" in e.reason, e.reason
            assert tree(tmp) == [], "nothing is opened for an invalid config"
            return
        try:
            box = Box(client, tmp / "outbox", tmp, seed=False)
            probe = fr.Feedback(
                summary="probe",
                description="d" * 100,
                fields=[fr.Field(name="topic", json_value="23795")],
                attachments=[
                    fr.Attachment(element_key="Log", data=b"x" * 1000, file_name="p.log")
                ],
            )
            # Within the policy's limits or refused for them; either way clean.
            box.attempt(client.submit, probe)
            box.attempt(client.submit_crash, fr.CrashReport(text="boom"))
        finally:
            client.close()


@fuzz(100)
@given(data=st.data())
def test_policy_numbers_open_or_are_invalid_config(data):
    policy, _ = corrupting(data.draw, {}, POLICY_TYPES, most=4)
    open_with_policy(fr.Policy(**policy))


# Was a bug: above i32::MAX ms it panicked in rusqlite at open (InternalError).
@fuzz(50)
@given(busy_timeout=DURATION)
@example(busy_timeout=timedelta(days=25))
def test_policy_busy_timeout_opens_or_is_invalid_config(busy_timeout):
    open_with_policy(fr.Policy(busy_timeout=busy_timeout))


def closed_loopback_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# Was a bug: retry delays up to timedelta.max were accepted and dated retries
# past datetime.max, so stats()/reports() raised OverflowError for good.
def test_accepted_retry_policy_keeps_status_calls_working():
    longest = timedelta.max
    with tempfile.TemporaryDirectory(prefix="fieldreport-hostile-") as tmp:
        outbox = pathlib.Path(tmp) / "outbox"
        base_url = f"http://127.0.0.1:{closed_loopback_port()}/api/v1"
        policy = fr.Policy(retry_base=longest, retry_max=longest, max_requests_per_sec=0)
        try:
            client = fr.FieldReportClient(config_for(outbox, base_url=base_url, policy=policy))
        except fr.FieldReportError.InvalidConfig:
            return  # refusing the policy would keep the promise too
        try:
            for i in range(3):
                client.submit(fr.Feedback(summary=f"report {i}"))
            for _ in range(3):  # each flush fails one report and schedules its retry
                client.flush(timedelta(seconds=10))
            # Jittered delays: each is past year 9999 with probability 0.997.
            for call in (client.stats, lambda: client.reports(fr.ReportFilter())):
                try:
                    call()
                except fr.FieldReportError:
                    pass  # a specific refusal would keep the promise
        finally:
            client.close()


# ---------------------------------------------------------------------------
# Arguments of the other calls
# ---------------------------------------------------------------------------

I64 = st.one_of(st.sampled_from([0, -1, 1, 2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1))
CALL = st.one_of(
    st.tuples(st.just("set_api_key"), st.tuples(pieces(), KEY_TOKEN, pieces())),
    st.tuples(st.sampled_from(["report", "purge", "retry"]), I64),
    st.tuples(st.sampled_from(["report", "retry"]), st.just("seed")),
    st.tuples(st.just("flush offline"), DURATION),
    st.tuples(
        st.just("reports"),
        st.tuples(
            st.lists(st.sampled_from(list(fr.ReportState)), max_size=3),
            st.none() | st.sampled_from(list(fr.ReportKind)),
            st.none() | U32,
        ),
    ),
)


@fuzz(100)
@given(calls=st.lists(CALL, min_size=1, max_size=4))
def test_call_arguments_are_answered_or_refused_cleanly(calls):
    with fresh_box() as box:
        c = box.client
        for op, arg in calls:
            before = box.snapshot()
            ids = {r[0] for r in before.reports}
            if arg == "seed":
                arg = box.seed_id
            try:
                if op == "set_api_key":
                    prefix, token, suffix = arg
                    key = prefix + token + suffix
                    bad = any(ch in RUST_WHITESPACE or is_control(ch) for ch in key)
                    try:
                        c.set_api_key(key)
                    except fr.FieldReportError as e:
                        assert bad and isinstance(e, fr.FieldReportError.InvalidInput), repr(e)
                        assert token not in str(e) + repr(e), "the API key shows in the error"
                        raise
                    assert not bad, f"API key {key!r} accepted"
                elif op in ("report", "purge", "retry"):
                    if op == "purge" and arg in ids:
                        continue  # purging what exists is no refusal
                    try:
                        got = getattr(c, op)(arg)
                    except fr.FieldReportError.NotFound as e:
                        assert arg not in ids and e.id == arg
                        raise
                    except fr.FieldReportError.InvalidState as e:
                        assert op == "retry" and arg in ids  # only dead reports retry
                        raise
                    assert op == "report" and arg in ids, f"{op}({arg}) succeeded"
                    assert got.id == arg
                elif op == "flush offline":
                    c.set_online(False)
                    result = c.flush(arg)
                    c.set_online(True)
                    assert result.receipts == [] and "offline" in result.stopped
                    assert result.pending == before.stats[0]
                else:
                    states, kind, limit = arg
                    got = c.reports(fr.ReportFilter(states=states, kind=kind, limit=limit))
                    assert limit is None or len(got) <= limit
                    assert all(not states or r.state in states for r in got)
                    assert all(kind is None or r.kind == kind for r in got)
            except fr.FieldReportError as e:
                event(f"{op}: {type(e).__name__}")
                assert_specific(e)
            else:
                event(f"{op}: answered")
            # Answered or refused, nothing changed.
            assert box.snapshot() == before, f"{op}({arg!r}) changed the outbox"
