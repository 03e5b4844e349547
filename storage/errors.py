"""The project's one error root, and the storage package's branch of it.

`IrmsError` lives here because `storage` is the bottom layer that every other
package imports; each package derives its own branch from it.
"""

from __future__ import annotations


class IrmsError(Exception):
    """Root of every error IRMS raises on purpose. `str(err)` is one clear line."""

    exit_code = 1
    http_status = 500


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
