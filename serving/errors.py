"""The one error type the serving code raises: a gRPC status code and TF Serving's message."""

from __future__ import annotations

import grpc


class ServingError(Exception):
    """A request failed with ``code`` (a grpc.StatusCode) and a TF Serving-style ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ServingError:
    """INVALID_ARGUMENT."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """NOT_FOUND."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)
