"""Domain errors, one class per gRPC status the API uses (DESIGN.md §5).

The server's interceptor maps these to status codes; the client maps codes back to the
same classes, so callers on both sides catch the same exceptions.
"""

from __future__ import annotations

import grpc


class KregError(Exception):
    """Base of every error the registry or client raises on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidArgument(KregError, ValueError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(KregError, KeyError):
    code = grpc.StatusCode.NOT_FOUND

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class Unauthenticated(KregError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(KregError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(KregError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(KregError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class DataLoss(KregError):
    code = grpc.StatusCode.DATA_LOSS


class Unavailable(KregError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(KregError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(KregError):
    code = grpc.StatusCode.INTERNAL


ERRORS_BY_CODE: dict[grpc.StatusCode, type[KregError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        Unauthenticated,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        DataLoss,
        Unavailable,
        DeadlineExceeded,
        Internal,
    )
}


def error_from_status(code: grpc.StatusCode, details: str) -> KregError:
    """The domain error for a status received over the wire."""
    return ERRORS_BY_CODE.get(code, Internal)(details or code.name)
