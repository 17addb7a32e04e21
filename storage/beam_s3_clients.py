"""One boto3 S3 client per process and settings for Beam's S3 IO, not one per file operation.

apache-beam 2.59's ``S3FileSystem`` builds a new ``S3IO`` for every call (match, open, exists,
size, rename, delete), and each ``S3IO`` builds a new ``boto3.session.Session()`` and S3 client:
botocore then finds, reads and parses the S3 service model's JSON again. On a pipeline root in a
bucket that is most of what Beam does: a py-spy profile of a cold 6,000-row run on an S3-API server
(2026-12-01) had 29 % of all samples in ``S3IO.__init__``, and the run took 158 s against 90 s on
local disk (Transform 58 s against 25 s).

boto3's documentation recommends one client shared across threads (low-level clients are thread
safe; sessions are not). So Beam's module gets a session factory whose ``client(**settings)``
returns the client already built with the same settings in this process. Beam's per-file state
(the download stream of an open file) lives in Beam's own ``Client`` wrapper, which is still
built per ``S3IO``; only the boto3 client underneath is shared. Credentials that refresh (an
assumed role, web identity) are refreshed by botocore inside that client.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_clients: dict[tuple, Any] = {}


class SharedClientSession:
    """Stands in for ``boto3.session.Session`` where Beam builds its S3 client: same clients, built once."""

    def client(self, **settings: Any) -> Any:
        """The boto3 client for these settings (service, endpoint, region, keys...), built on first use."""
        import boto3

        key = tuple(sorted(settings.items()))
        with _lock:
            if key not in _clients:
                _clients[key] = boto3.session.Session().client(**settings)
            return _clients[key]


class _Boto3WithSharedClients:
    """What Beam's S3 client module sees as ``boto3``: only ``boto3.session.Session`` is used there."""

    class session:  # noqa: N801 -- mirrors the module attribute boto3.session
        Session = SharedClientSession


def share_beam_s3_clients() -> bool:
    """Make Beam's S3 IO in this process reuse its boto3 clients; False when boto3 is not installed."""
    from apache_beam.io.aws.clients.s3 import boto3_client

    if boto3_client.boto3 is None:
        return False
    boto3_client.boto3 = _Boto3WithSharedClients
    return True
