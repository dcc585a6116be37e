"""fieldreport: queue user feedback and crash logs in a durable outbox and
deliver them, with their attachments, to a feedback server: Centercode,
ABC User Feedback or Apptentive.

Everything comes from the uniffi-generated module `fieldreport._ffi`
(generated from uniffi.udl; never edited by hand) and is re-exported here.
A thin hand-written layer (`_layer.py`) makes it feel like Python:

- `with FieldReportClient(config) as client:` closes the client on exit;
- `Config(abc=AbcDestination(...))` or `Config(apptentive=...)` delivers to
  ABC User Feedback or Apptentive instead of Centercode; ABC's ids may be
  ints and its field map a dict;
- `client.flush(30)` takes seconds (int or float) as well as a `timedelta`;
- extra fields are a `dict` of Python values: `fields={"topic": 23795}`;
- a `pathlib.Path` is accepted wherever a path is (`Config.outbox_dir`,
  `Attachment.path`, `CrashReport.path`);
- every record has a readable `repr`, every exception a message;
- times are aware `datetime`s (UTC), and "no time" is `None`
  (`ReportStatus.next_attempt_at`, `Stats.next_attempt_at`);
- `ReportStatus.context` is the recorded context as a `dict`.

::

    import fieldreport as fr

    with fr.FieldReportClient(fr.Config(...)) as client:
        client.submit(fr.Feedback(summary="...", fields={"topic": 23795}))
        client.flush(30)
"""

import typing as _t

if _t.TYPE_CHECKING:
    # A type checker keeps the first binding of a name, so the layer's
    # classes come before the generated ones they replace.
    from ._layer import (
        AbcDestination as AbcDestination,
        Attachment as Attachment,
        Config as Config,
        CrashReport as CrashReport,
        Feedback as Feedback,
        FieldReportClient as FieldReportClient,
        FieldValues as FieldValues,
        PathLike as PathLike,
        Seconds as Seconds,
    )
    from ._ffi.fieldreport import *  # type: ignore[assignment]  # noqa: F401,F403
else:
    # At run time the later binding wins: the generated names, then the
    # layer's subclasses over them.
    from ._ffi.fieldreport import *  # noqa: F401,F403
    from ._layer import (  # noqa: F401
        AbcDestination,
        Attachment,
        Config,
        CrashReport,
        Feedback,
        FieldReportClient,
        FieldValues,
        PathLike,
        Seconds,
    )
from ._layer import __all__ as __all__  # noqa: E402
