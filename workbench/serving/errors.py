"""Request errors. Every one becomes an HTTP answer `{"error": message}` with its status code."""

from __future__ import annotations


class RequestError(Exception):
    status_code = 400

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class BadRequest(RequestError):
    status_code = 400


class PayloadTooLarge(RequestError):
    status_code = 413


class ModelNotFound(RequestError):
    status_code = 404

    def __init__(self, name: str, available: list[str]):
        super().__init__(f"Model with name {name} does not exist. Available models: {', '.join(available)}")


class NotReady(RequestError):
    status_code = 503


class Overloaded(RequestError):
    status_code = 503
