"""Specific exception types, each mapped to the CLI's documented exit code.

0 success, 1 verification failed / evidence problem, 2 usage error,
3 infrastructure unavailable.
"""

from __future__ import annotations


class CustodyError(Exception):
    """Base class; `exit_code` is what the CLI returns for it."""

    exit_code = 1


class UsageError(CustodyError):
    """The request itself is wrong (unknown case, bad reference, bad option)."""

    exit_code = 2


class NotFoundError(UsageError):
    """A case, exhibit or object named by the user does not exist."""


class InfrastructureError(CustodyError):
    """A service we depend on is not reachable; the message says what to start."""

    exit_code = 3


class StoreUnavailable(InfrastructureError):
    """The S3 endpoint cannot be reached or refuses our credentials."""


class IntegrityError(CustodyError):
    """Bytes stored differ from bytes sent, or a record does not match its object."""

    exit_code = 1


class ChainConflict(CustodyError):
    """Another appender won the race for a sequence number; retry with the new head."""


class VerificationFailed(CustodyError):
    """Raised by callers that want an exception instead of a report."""

    exit_code = 1


class StorageError(InfrastructureError):
    """The S3 server answered with an error we did not expect; `code` is the S3 error code.

    Raised at the storage seam so that no module above it needs the SDK's own exception types.
    """

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class ObjectNotFound(StorageError, NotFoundError):
    """The key or version does not exist (or a delete marker hides it)."""

    exit_code = 2
