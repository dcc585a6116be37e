"""The Pythonic layer over the generated module; see the package's
docstring. Imported by `fieldreport/__init__.py`."""

from __future__ import annotations

import datetime as _dt
import json as _json
import os as _os
import typing as _t

from ._ffi import fieldreport as _ffi
from ._ffi.fieldreport import __all__ as _generated_all

PathLike = _t.Union[str, "_os.PathLike[str]"]
"""A path: `str` or any `os.PathLike` such as `pathlib.Path`."""

FieldValues = _t.Union[_t.Mapping[str, _t.Any], _t.Sequence[_ffi.Field]]
"""Extra fields: `{"topic": 23795}` (any JSON-serialisable values) or a
list of `Field(name=, json_value=)` with the value already JSON text."""

Seconds = _t.Union[int, float, _dt.timedelta]
"""A duration: seconds as `int` or `float`, or a `timedelta`."""

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _invalid(reason: str) -> Exception:
    # The generated module declares FieldReportError twice (an exception,
    # then a namespace of its variants); type checkers see only the first.
    return _ffi.FieldReportError.InvalidInput(reason)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# Conversions. Each is a property on a subclass of a generated record, so a
# value is converted when the record is built and when it is assigned later;
# the generated converters then read the types the UDL declares.
# ---------------------------------------------------------------------------


def _as_path(what: str, value: _t.Any) -> _t.Optional[str]:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, _os.PathLike):
        path = _os.fspath(value)
        if isinstance(path, str):
            return path
    raise TypeError(
        f"{what} must be a str or a path-like object such as pathlib.Path, "
        f"not {type(value).__name__}"
    )


def _path_property(name: str, what: str) -> property:
    slot = "_" + name

    def get(self: _t.Any) -> _t.Optional[str]:
        return getattr(self, slot)

    def set_(self: _t.Any, value: _t.Optional[PathLike]) -> None:
        setattr(self, slot, _as_path(what, value))

    return property(get, set_, doc=f"{what}, as text (a Path given is converted).")


def _as_fields(value: _t.Any) -> _t.List[_ffi.Field]:
    if value is None:
        return []
    if isinstance(value, _t.Mapping):
        fields = []
        for name, field_value in value.items():
            if not isinstance(name, str):
                raise _invalid(f"fields: the name {name!r} is not a str")
            try:
                # allow_nan=False: NaN and Infinity are not JSON.
                text = _json.dumps(field_value, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise _invalid(f"field {name!r}: {e}") from None
            fields.append(_ffi.Field(name=name, json_value=text))
        return fields
    if isinstance(value, (str, bytes)) or not isinstance(value, _t.Iterable):
        raise TypeError(
            "fields must be a dict of JSON-serialisable values "
            f"or a list of Field, not {type(value).__name__}"
        )
    fields = list(value)
    for item in fields:
        if not isinstance(item, _ffi.Field):
            raise TypeError(f"fields: {item!r} is not a Field (or give a dict)")
    return fields


def _fields_property() -> property:
    def get(self: _t.Any) -> _t.List[_ffi.Field]:
        return self._fields

    def set_(self: _t.Any, value: FieldValues) -> None:
        self._fields = _as_fields(value)

    return property(
        get,
        set_,
        doc="Extra fields: assign a dict (`{'topic': 23795}`) or a list of Field; "
        "read back as a list of Field.",
    )


def _as_timedelta(what: str, value: _t.Any) -> _dt.timedelta:
    # bool is an int, but flush(True) is a mistake, not one second.
    if isinstance(value, bool) or not isinstance(value, (int, float, _dt.timedelta)):
        raise TypeError(
            f"{what} must be seconds (int or float) or a timedelta, not {type(value).__name__}"
        )
    if not isinstance(value, _dt.timedelta):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{what} must be a finite number of seconds, not {value}")
        value = _dt.timedelta(seconds=value)
    if value < _dt.timedelta(0):
        raise ValueError(f"{what} must not be negative, not {value}")
    return value


# The generated __init__s are typed with the UDL's types; the properties
# below take the wider ones and convert them (hence the arg-type ignores).


class Config(_ffi.Config):
    """Everything needed to open a `FieldReportClient` (see the generated
    `fieldreport._ffi.Config` for every field). `outbox_dir` may be a
    `pathlib.Path`. Printing a `Config` never shows the API key.

    Centercode by default (`project_key`, `feedback_type_key`, `base_url`
    or `company`); another destination with `abc=AbcDestination(...)` or
    `apptentive=ApptentiveDestination(...)`, `api_key` then holding ABC's
    key or Apptentive's token::

        Config(outbox_dir=path, api_key=key,
               abc=AbcDestination(base_url=url, project_id=1, channel_id=1,
                                  map={"images": "images"}))
    """

    outbox_dir = _path_property("outbox_dir", "outbox_dir")

    def __init__(self, *, outbox_dir: PathLike, **fields: _t.Any) -> None:
        super().__init__(outbox_dir=outbox_dir, **fields)  # type: ignore[arg-type]


def _as_id(what: str, value: _t.Any) -> str:
    # bool is an int, but project_id=True is a mistake, not project 1. The
    # text is checked in Rust at open (InvalidConfig naming the setting).
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{what} must be an int or a str, not {type(value).__name__}")
    return str(value)


def _id_property(name: str) -> property:
    slot = "_" + name
    what = f"AbcDestination.{name}"

    def get(self: _t.Any) -> str:
        return getattr(self, slot)

    def set_(self: _t.Any, value: _t.Union[int, str]) -> None:
        setattr(self, slot, _as_id(what, value))

    return property(get, set_, doc=f"{what}: an int or a str, kept as text.")


def _as_map(value: _t.Any) -> _t.Dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, _t.Mapping):
        raise TypeError(
            f"AbcDestination.map must be a dict of role to field key, not {type(value).__name__}"
        )
    out = {}
    for role, field in value.items():
        if not isinstance(role, str) or not isinstance(field, str):
            raise TypeError(f"AbcDestination.map: {role!r}: {field!r} is not str: str")
        out[role] = field
    return out


def _as_names(value: _t.Any) -> _t.List[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, _t.Iterable):
        raise TypeError(
            f"AbcDestination.issue_names must be a list of str, not {type(value).__name__}"
        )
    names = list(value)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"AbcDestination.issue_names: {name!r} is not a str")
    return names


def _converted_property(name: str, convert: _t.Callable[[_t.Any], _t.Any], doc: str) -> property:
    slot = "_" + name

    def get(self: _t.Any) -> _t.Any:
        return getattr(self, slot)

    def set_(self: _t.Any, value: _t.Any) -> None:
        setattr(self, slot, convert(value))

    return property(get, set_, doc=doc)


class AbcDestination(_ffi.AbcDestination):
    """An ABC User Feedback channel, for `Config(abc=...)`; the API key is
    `Config.api_key`. `project_id` and `channel_id` may be ints; `map` is a
    dict of role to channel field (`{"images": "images", "crash_log":
    "crash_log", "context.device.os_name": "os"}`); `issue_names` any
    iterable of str; `presigned_images=True` sends images by presigned
    upload instead of multipart. Checked at open: a bad value is refused with
    `InvalidConfig` naming it (`abc.project_id: ...`)."""

    project_id = _id_property("project_id")
    channel_id = _id_property("channel_id")
    map = _converted_property(
        "map", _as_map, "Role -> channel field key: assign any mapping of str to str."
    )
    issue_names = _converted_property(
        "issue_names", _as_names, "Issue names sent with every feedback: any iterable of str."
    )

    def __init__(
        self,
        *,
        base_url: str,
        project_id: _t.Union[int, str],
        channel_id: _t.Union[int, str],
        map: _t.Optional[_t.Mapping[str, str]] = None,
        issue_names: _t.Optional[_t.Iterable[str]] = None,
        presigned_images: bool = False,
    ) -> None:
        super().__init__(
            base_url=base_url,
            project_id=project_id,  # type: ignore[arg-type]
            channel_id=channel_id,  # type: ignore[arg-type]
            map=map,  # type: ignore[arg-type]
            issue_names=issue_names,  # type: ignore[arg-type]
            presigned_images=bool(presigned_images),
        )


class Attachment(_ffi.Attachment):
    """A file to upload with a report: exactly one of `path` (a str or a
    `pathlib.Path`) and `data` (bytes; `file_name` is then required)."""

    path = _path_property("path", "Attachment.path")

    def __init__(
        self, *, element_key: str, path: _t.Optional[PathLike] = None, **fields: _t.Any
    ) -> None:
        super().__init__(element_key=element_key, path=path, **fields)  # type: ignore[arg-type]


class Feedback(_ffi.Feedback):
    """Feedback a person wrote. `fields` is a dict of extra fields with
    Python values (`{"topic": 23795, "tags": ["ui"]}`), sent as JSON."""

    fields = _fields_property()

    def __init__(
        self,
        *,
        summary: str,
        fields: _t.Optional[FieldValues] = None,
        attachments: _t.Optional[_t.Sequence[_ffi.Attachment]] = None,
        **more: _t.Any,
    ) -> None:
        super().__init__(
            summary=summary, fields=fields, attachments=list(attachments or ()), **more  # type: ignore[arg-type]
        )


class CrashReport(_ffi.CrashReport):
    """A crash report: exactly one of `text` and `path` (a str or a
    `pathlib.Path`). `fields` as for `Feedback`."""

    path = _path_property("path", "CrashReport.path")
    fields = _fields_property()

    def __init__(
        self,
        *,
        path: _t.Optional[PathLike] = None,
        fields: _t.Optional[FieldValues] = None,
        attachments: _t.Optional[_t.Sequence[_ffi.Attachment]] = None,
        **more: _t.Any,
    ) -> None:
        super().__init__(path=path, fields=fields, attachments=list(attachments or ()), **more)  # type: ignore[arg-type]


class FieldReportClient(_ffi.FieldReportClient):
    """A feedback client bound to one outbox directory (see the generated
    `fieldreport._ffi.FieldReportClient` for every call). Use it as a
    context manager to close it, and stop its background sender, on exit::

        with FieldReportClient(config) as client:
            client.submit(Feedback(summary="..."))
            client.flush(30)
    """

    def __enter__(self) -> "FieldReportClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def flush(self, budget: Seconds) -> _ffi.FlushResult:
        """Delivers what is due, oldest first, until done or `budget` (seconds
        or a timedelta) is spent."""
        return super().flush(_as_timedelta("flush budget", budget))


# ---------------------------------------------------------------------------
# Readable records, times, messages: set on the generated classes, since
# the generated code builds the records and errors it returns itself.
# ---------------------------------------------------------------------------


def _record_repr(self: object) -> str:
    # Field order is the generated __init__'s assignment order, i.e. the
    # UDL's; a property-backed field is stored as `_name`.
    parts = []
    for slot in vars(self):
        name = slot.lstrip("_")
        parts.append(f"{name}={getattr(self, name)!r}")
    return f"{type(self).__qualname__}({', '.join(parts)})"


def _generated_here(function: _t.Any) -> bool:
    """Whether a method was written by the generated module (a Rust-backed
    repr such as Config's, which redacts the API key), not by @dataclass."""
    code = getattr(getattr(function, "__wrapped__", function), "__code__", None)
    return code is not None and code.co_filename == _ffi.__file__


def _readable(cls: type) -> None:
    # getattr, not the class's own __dict__: a subclass here (Config) keeps
    # the generated repr it inherits.
    if not _generated_here(getattr(cls, "__repr__", None)):
        cls.__repr__ = _record_repr  # type: ignore[assignment, method-assign]
        # The generated __str__ formats nested records with their repr.
        cls.__str__ = _record_repr  # type: ignore[assignment, method-assign]


for _name in _generated_all:
    _cls = getattr(_ffi, _name)
    if not isinstance(_cls, type) or issubclass(_cls, BaseException):
        continue
    if "__eq__" in _cls.__dict__ and "__init__" in _cls.__dict__ and hasattr(
        _cls, "__dataclass_fields__"
    ):
        _readable(_cls)  # a record
    for _variant in vars(_cls).values():
        # The variants of an enum with data (Event, Submission, HttpBody).
        if isinstance(_variant, type) and hasattr(_variant, "__dataclass_fields__"):
            _readable(_variant)
for _cls in (Config, AbcDestination, Attachment, Feedback, CrashReport):
    _readable(_cls)


def _no_epoch() -> property:
    # The outbox stores "due at once" as time 0; Python says None.
    def get(self: _t.Any) -> _t.Optional[_dt.datetime]:
        return self._next_attempt_at

    def set_(self: _t.Any, value: _t.Optional[_dt.datetime]) -> None:
        self._next_attempt_at = None if value is None or value <= _EPOCH else value

    return property(
        get,
        set_,
        doc="When the next attempt is due (aware, UTC); None when none is "
        "scheduled: not waiting, or due at the next flush.",
    )


_ffi.ReportStatus.next_attempt_at = _no_epoch()  # type: ignore[assignment, attr-defined]
_ffi.Stats.next_attempt_at = _no_epoch()  # type: ignore[assignment, attr-defined]


def _context(self: _t.Any) -> _t.Dict[str, _t.Any]:
    """The context recorded at submit, as a dict (`context_json` parsed)."""
    return _json.loads(self.context_json)


_ffi.ReportStatus.context = property(_context)  # type: ignore[attr-defined]

# The same words as the Rust library's `Display` of its errors.
_MESSAGES: _t.Dict[str, _t.Callable[[_t.Any], str]] = {
    "InvalidConfig": lambda e: f"invalid configuration: {e.reason}",
    "InvalidInput": lambda e: f"invalid input: {e.reason}",
    "AttachmentTooLarge": lambda e: (
        f"attachment {e.name!r} is {e.size} bytes, over the limit of {e.limit} bytes"
    ),
    "AttachmentUnreadable": lambda e: f"attachment {e.name!r} cannot be read: {e.reason}",
    "StorageFull": lambda e: "storage full: the disk has no room for this report",
    "OutboxFull": lambda e: f"outbox full: {e.reason}",
    "Storage": lambda e: f"outbox storage error: {e.reason}",
    "NotFound": lambda e: f"no report with id {e.id}",
    "InvalidState": lambda e: f"invalid state: {e.reason}",
    "Closed": lambda e: "the client is closed",
    "NotSent": lambda e: f"not sent: {e.reason}",
    "Failed": lambda e: f"failed: {e.reason}",
}


def _error_fields(self: BaseException) -> _t.Dict[str, _t.Any]:
    return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def _error_str(self: BaseException) -> str:
    message = _MESSAGES.get(type(self).__name__)
    if message is not None:
        return message(self)
    # A variant added to the UDL after this file: name it and its fields.
    fields = ", ".join(f"{k}={v!r}" for k, v in _error_fields(self).items())
    return f"{type(self).__name__}: {fields}" if fields else type(self).__name__


def _error_repr(self: BaseException) -> str:
    fields = ", ".join(f"{k}={v!r}" for k, v in _error_fields(self).items())
    return f"{type(self).__qualname__}({fields})"


for _family in (_ffi.FieldReportError, _ffi.TransportError):
    for _variant in vars(_family).values():
        if isinstance(_variant, type) and issubclass(_variant, BaseException):
            _variant.__str__ = _error_str  # type: ignore[method-assign]
            _variant.__repr__ = _error_repr  # type: ignore[method-assign]

del _name, _cls, _variant, _family

# What `fieldreport` exports: everything generated, the subclasses above in
# place of their bases, and the type aliases.
__all__ = list(_generated_all) + ["PathLike", "FieldValues", "Seconds"]
