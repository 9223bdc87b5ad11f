"""What every API viewset shares: a JSON answer to any bad request, and the ids, names and query
values of a request checked before they reach a database lookup."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework import viewsets
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from zart_django.codec import check_text
from zart_django.errors import PayloadError
from zart_django.names import check_name

from .parsers import JSONParser

_REFUSED_BODIES = (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The project's DRF exception handler, once a body Django refuses (larger than
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``, too many fields or files) is made a 400 ``ParseError``:
    Django would answer it with an HTML page."""
    if isinstance(exc, _REFUSED_BODIES):
        logging.getLogger(f"django.security.{type(exc).__name__}").error(str(exc))
        exc = ParseError(str(exc))
    return api_settings.EXCEPTION_HANDLER(exc, context)


class ApiViewSet(viewsets.ViewSet):
    """A viewset whose errors are all JSON, and whose URL values are checked first: an execution
    id (``pk``) or query value no database can hold, or an event ``name`` outside the name
    alphabet, is a 400 naming it."""

    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_exception_handler(self) -> Any:
        return exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if "pk" in kwargs:
            _refuse_unless(check_text, kwargs["pk"], "execution id", "execution_id")
        if "name" in kwargs:
            _refuse_unless(check_name, kwargs["name"], "event name", "event")
        for key, values in request.query_params.lists():
            _refuse_unless(check_text, key, "query parameter name", "query")
            for value in values:
                _refuse_unless(check_text, value, f"query parameter {key!r}", key)


def _refuse_unless(check: Callable[[str, str], str], value: str, what: str, field: str) -> None:
    """Run ``check(value, what)``; its ``PayloadError`` is a 400 naming ``field``."""
    try:
        check(value, what)
    except PayloadError as exc:
        raise ValidationError({field: [str(exc)]}) from None
