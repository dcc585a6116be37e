"""fieldreport: queue user feedback and crash logs in a durable outbox and
deliver them, with their attachments, to a Centercode feedback server.

Everything is in the uniffi-generated module `fieldreport.fieldreport`
(regenerate it with bindings/generate.sh; never edit it by hand) and is
re-exported here::

    import fieldreport as fr
    client = fr.FieldReportClient(fr.Config(...))
"""

from .fieldreport import *  # noqa: F401,F403
from .fieldreport import __all__  # noqa: F401
