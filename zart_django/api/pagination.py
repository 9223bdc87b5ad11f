"""The API's pagination: numbered pages for short lists, and keyset pages for the execution list,
which may hold millions of rows.

``Pagination`` numbers the pages (``?page=``) and counts the list (``count``) up to a bound from
the page asked for, saying with ``count_exact`` whether it stopped there: right for the open
approvals a user may decide, each checked against the user's permissions, so that counting costs
per row. ``KeysetPagination`` never counts and never skips rows with an
OFFSET: a page is the rows after the last one of the page before, in the list's order with the
id as tie-break, read by index; the ``next`` link carries that row's key as an opaque
``?cursor=``. A cursor the API did not give (not base64, not its JSON, another ordering's) is a
400 naming ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from zart_django.codec import check_text
from zart_django.counting import BoundedPaginator
from zart_django.errors import PayloadError

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_CURSOR = 2000
"""The longest cursor read (the API's are a few hundred characters at most)."""
COUNT_BOUND = 1000
"""How many rows a numbered list counts at most from the page asked for (20 pages of 50)."""


class Pagination(PageNumberPagination):
    """Pages of 50 (``page_size`` up to 500); a ``page`` or ``page_size`` that is not a positive
    integer (within the bound) is a 400 naming it, a page past the last a 404. ``count`` reads
    at most ``count_bound`` rows from the page's first (``BoundedPaginator``); when it stops
    there, ``count`` is the rows before the page plus that many, ``count_exact`` is false and
    ``next`` still leads on."""

    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    count_bound = COUNT_BOUND

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        start_page = positive(request, self.page_query_param, None) or 1
        positive(request, self.page_size_query_param, self.max_page_size)
        self.django_paginator_class = partial(
            BoundedPaginator, start_page=start_page, bound=self.count_bound
        )
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                "count": self.page.paginator.count,
                "count_exact": not self.page.paginator.more,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        answer = super().get_paginated_response_schema(schema)
        answer["required"].append("count_exact")
        answer["properties"]["count_exact"] = {
            "type": "boolean",
            "description": f"false when counting stopped {self.count_bound} rows past the page's "
            "first: there are more than `count`",
        }
        return answer


def positive(request: Request, name: str, most: int | None) -> int | None:
    """Query value ``name`` as a whole number from 1 to ``most`` (no bound if None), None if it
    is absent; a 400 naming it otherwise."""
    value = request.query_params.get(name)
    if value is None:
        return None
    bound = "" if most is None else f" up to {most}"
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= (most or int(value)):
        raise ValidationError({name: [f"{value!r} is not a whole number from 1{bound}"]})
    return int(value)


PAGE_SIZE_PARAMETER = OpenApiParameter(
    "page_size",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    description=f"results per page (default {PAGE_SIZE})",
)
PAGES = [
    OpenApiParameter("page", {"type": "integer", "minimum": 1}, description="page number"),
    PAGE_SIZE_PARAMETER,
]
"""The query parameters of a list paginated by ``Pagination``."""

CURSOR_PAGES = [
    OpenApiParameter(
        "cursor",
        str,
        description="where the page starts: the cursor of the previous page's `next` link",
    ),
    PAGE_SIZE_PARAMETER,
]
"""The query parameters of a list paginated by ``KeysetPagination``."""


@dataclass(frozen=True)
class Ordering:
    """A list's order: by ``field`` (descending if ``descending``), then by the id the same way;
    ``nullable`` fields put their empty values last either way."""

    field: str
    descending: bool
    nullable: bool = False

    @property
    def name(self) -> str:
        """How ``?ordering=`` says it: the field, with ``-`` for descending."""
        return f"-{self.field}" if self.descending else self.field

    def order_by(self) -> tuple[Any, ...]:
        """The ``order_by`` arguments (plain names where no empty value can occur, so that an
        index on the field and the id serves them on both databases)."""
        tie = "-id" if self.descending else "id"
        if self.field == "id":
            return (tie,)
        if self.nullable:
            way = "desc" if self.descending else "asc"
            return getattr(F(self.field), way)(nulls_last=True), tie
        return self.name, tie

    def after(self, value: Any, last_id: str) -> Q:
        """The rows after the one with ``value`` in the field and id ``last_id``, in this order."""
        beyond = "lt" if self.descending else "gt"
        later_id = Q(**{f"id__{beyond}": last_id})
        if self.field == "id":
            return later_id
        if value is None:
            return Q(**{f"{self.field}__isnull": True}) & later_id
        rest = Q(**{f"{self.field}__{beyond}": value}) | (Q(**{self.field: value}) & later_id)
        if self.nullable:
            return rest | Q(**{f"{self.field}__isnull": True})
        # The bound alone (field <= value) is what an index can seek to; the rest is a filter.
        return Q(**{f"{self.field}__{beyond}e": value}) & rest


class KeysetPagination(BasePagination):
    """Pages of ``page_size`` rows (default 50, up to 500) after ``?cursor=``, with a ``next``
    link (null on the last page) and no count (see the module's docstring), in ``ordering``
    (by id if None); the values of fields in ``datetimes`` are read back from cursors as
    aware datetimes."""

    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def __init__(
        self, ordering: Ordering | None = None, datetimes: frozenset[str] = frozenset()
    ) -> None:
        self.ordering = ordering or Ordering("id", descending=False)
        self.datetimes = datetimes
        self.next_link: str | None = None

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: Any = None) -> Any:
        """The page's rows: those after the cursor's, in the ordering, at most ``page_size``."""
        if "page" in request.query_params:
            raise ValidationError(
                {"page": ["this list is paged by cursor: follow the `next` link of each page"]}
            )
        size = positive(request, self.page_size_query_param, MAX_PAGE_SIZE) or PAGE_SIZE
        token = request.query_params.get(self.cursor_query_param)
        if token is not None:
            value, last_id = self._decode(token)
            queryset = queryset.filter(self.ordering.after(value, last_id))
        rows = list(queryset.order_by(*self.ordering.order_by())[: size + 1])
        if len(rows) > size:
            rows = rows[:size]
            url = request.build_absolute_uri()
            cursor = self._encode(rows[-1])
            self.next_link = replace_query_param(url, self.cursor_query_param, cursor)
        return rows

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": self.next_link, "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["next", "results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def _encode(self, row: Any) -> str:
        """The cursor after ``row``: its ordering, value and id, as URL-safe base64 JSON."""
        value = getattr(row, self.ordering.field)
        if isinstance(value, datetime):
            value = value.isoformat()
        key = {"o": self.ordering.name, "v": value, "id": row.pk}
        return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()

    def _decode(self, token: str) -> tuple[Any, str]:
        """The value and id a cursor of this ordering holds; a 400 naming ``cursor`` for any
        other text."""
        if len(token) > MAX_CURSOR:
            raise _bad_cursor(f"it is longer than {MAX_CURSOR} characters")
        try:
            key = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        except (UnicodeError, binascii.Error, ValueError, RecursionError):
            raise _bad_cursor("it is not a cursor this list gave") from None
        if not isinstance(key, dict) or set(key) != {"o", "v", "id"}:
            raise _bad_cursor("it is not a cursor this list gave")
        if key["o"] != self.ordering.name:
            raise _bad_cursor(f"it was made for ordering {key['o']!r}, not {self.ordering.name!r}")
        value, last_id = key["v"], key["id"]
        if not isinstance(last_id, str) or not (
            isinstance(value, str) or (value is None and self.ordering.nullable)
        ):
            raise _bad_cursor("it is not a cursor this list gave")
        try:
            check_text(last_id, "cursor id")
            check_text(value or "", "cursor value")
        except PayloadError as exc:
            raise _bad_cursor(str(exc)) from None
        if value is not None and self.ordering.field in self.datetimes:
            value = _moment(value)
        return value, last_id


def _moment(text: str) -> datetime:
    """The aware datetime a cursor holds; a 400 naming ``cursor`` if it is not one."""
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _bad_cursor("its position is not a date and time")
    return moment


def _bad_cursor(why: str) -> ValidationError:
    return ValidationError({"cursor": [f"not a valid cursor: {why}"]})
