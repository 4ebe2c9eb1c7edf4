"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with the HTTP status OpenAI uses.

Clients (the `openai` package, alpaca_eval, LangChain) read `message` and `param`, so every bad input names the
field it is about, and the server keeps serving after it.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class APIError(Exception):
    """An error answered with `status` and OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """The first problem pydantic found, with the field's dotted path as `param`."""
    error = exc.errors()[0]
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    message = str(error.get("msg", "invalid request"))
    if error.get("type") == "json_invalid":
        reason = error.get("ctx", {}).get("error", message)
        return APIError(400, f"the request body is not valid JSON: {reason}").response()
    message = message.removeprefix("Value error, ")
    if not loc and ": " in message:  # a check across fields names its field first
        loc = [message.split(": ", 1)[0]]
        message = message.split(": ", 1)[1]
    param = ".".join(loc) or None
    if error.get("type") == "extra_forbidden":
        message = "unrecognized request argument"
    elif error.get("type") == "missing":
        message = "required field missing"
    shown = f"{param}: {message}" if param else message
    return APIError(400, shown, param=param).response()


def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    return APIError(exc.status_code, str(exc.detail), code=None).response()


def install(app) -> None:
    """Answers validation and routing errors, and our own APIError, in OpenAI's shape."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(APIError, lambda _, exc: exc.response())
