"""The storage package's branch of the project error tree (the root, `IrmsError`, is in evidence/errors.py)."""

from __future__ import annotations

from evidence.errors import IrmsError


class StoreError(IrmsError):
    """The object store failed or was misconfigured."""

    exit_code = 3
    http_status = 503


class StoreUnavailable(StoreError):
    """The store could not be reached; the operation may succeed later."""


class ObjectNotFound(StoreError):
    """The named object does not exist."""

    http_status = 404


class ObjectExists(StoreError):
    """A write-once object already exists with different content."""

    http_status = 409


class StoreConfigError(StoreError):
    """A store URL or its credentials are wrong."""

    exit_code = 2


class RetentionUnsupported(StoreError):
    """The store cannot lock objects (a file store, an S3 bucket without Object Lock)."""

    exit_code = 2
    http_status = 409


class RetentionRefused(StoreError):
    """A retention change that would shorten or weaken a lock: refused, the lock stays as it is."""

    exit_code = 1
    http_status = 409


class ObjectLocked(StoreError):
    """The store refused to delete an object: Object Lock retention or a legal hold protects it."""

    http_status = 409
