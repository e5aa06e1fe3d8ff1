"""422 responses that keep secrets secret.

FastAPI's own handler echoes each error's `input`: the refused camera url with its password,
or the whole request body when the error is about the body as a whole. Same shape here, with
credentials masked in every string of it.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from contracts.secrets import mask_credentials


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_credentials(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # a refused 1e400 echoed back: JSON has no infinity (else a 500)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return value


async def masked_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # registered for that type only
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                        content={"detail": _masked(jsonable_encoder(exc.errors()))})


class ErrorOut(BaseModel):
    detail: Any = Field(description="what is wrong: a message, or for 422 a list of errors "
                        "each naming its field in `loc`")


_DESCRIPTIONS = {
    400: "the body is not valid JSON",
    401: "no API key, or not a valid one",
    403: "the key's role does not allow this",
    404: "no such thing among those the key's site sees",
    409: "it exists already",
    413: "the request body is too large",
    422: "invalid input; each error names its field",
    429: "rate limit exceeded (see Retry-After)",
    503: "the work took longer than its bound; ask for less",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give."""
    return {code: {"model": ErrorOut, "description": _DESCRIPTIONS[code]} for code in codes}


# What every authenticated route can answer.
AUTHENTICATED = error_responses(400, 401, 403, 413, 422, 429)
