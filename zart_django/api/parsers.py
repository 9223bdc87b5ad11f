"""The API's JSON parser: DRF's, with JSON nested too deeply for Python refused like any other
malformed body (400), instead of failing with a ``RecursionError`` (500)."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a body nested too deeply to parse is a ``ParseError``."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - lists and objects nested too deeply") from None
