"""URL path converters: ``<zart_execution_id:execution_id>`` for an execution id in the inbox."""

from __future__ import annotations

from urllib.parse import quote, unquote

from .codec import check_text
from .names import PUNCTUATION


class ExecutionIdConverter:
    """An execution id as one URL path segment.

    Every stored id reverses, even one an older version accepted outside the name alphabet
    (``a/b``, ``..``): what the alphabet lacks is percent-escaped, so a bad row cannot make a page
    fail with ``NoReverseMatch``. An id no database can hold (a NUL character) matches nothing:
    the view answers 404 instead of failing in the database.
    """

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return check_text(unquote(value, errors="strict"), "execution id")

    def to_url(self, value: str) -> str:
        if value in (".", ".."):
            return "%2E" * len(value)
        return quote(value, safe=PUNCTUATION)
