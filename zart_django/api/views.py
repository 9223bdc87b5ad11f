"""API views. Engine errors become 4xx answers; bad input never causes a 500."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from zart_django import (
    DurableScheduler,
    EventAlreadyDelivered,
    EventExpired,
    EventReserved,
    ExecutionAlreadyExists,
    ExecutionFinished,
    ExecutionInfo,
    ExecutionNotFound,
    ExecutionResuming,
    PayloadError,
    RunRefused,
    StepNotFound,
    TaskNotFound,
    ZartError,
)
from zart_django.models import Execution, Status

from . import extensions
from .base import ApiViewSet
from .pagination import CURSOR_PAGES, KeysetPagination, Ordering
from .permissions import ExecutionPermission
from .schema import JsonSchema, documented, errors
from .serializers import (
    NAME_PATTERN,
    EventOfferedSerializer,
    EventSerializer,
    ExecutionDetailSerializer,
    ExecutionSerializer,
    RerunSerializer,
    RestartSerializer,
    StartSerializer,
)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


ID = OpenApiParameter(
    "id", {"type": "string", "pattern": NAME_PATTERN}, OpenApiParameter.PATH, required=True
)
EVENT = OpenApiParameter(
    "name", {"type": "string", "pattern": NAME_PATTERN}, OpenApiParameter.PATH, required=True
)


def as_api_error(exc: ZartError, field: str = "payload") -> APIException:
    """The HTTP answer to an engine error, or an app's error with a ``status_code`` (404, 403,
    409): 404, 409, 403 or 400 naming ``field``."""
    if isinstance(exc, ExecutionNotFound):
        return NotFound(str(exc))
    if isinstance(
        exc,
        ExecutionFinished
        | EventAlreadyDelivered
        | EventExpired
        | ExecutionAlreadyExists
        | ExecutionResuming
        | RunRefused,
    ):
        return Conflict(str(exc))
    if isinstance(exc, TaskNotFound):
        return ValidationError({"task": [str(exc)]})
    if isinstance(exc, StepNotFound):
        return ValidationError({"from_step": [str(exc)]})
    if isinstance(exc, PayloadError):
        return ValidationError({field: [str(exc)]})
    answers = {404: NotFound, 403: PermissionDenied, 409: Conflict}
    code = getattr(exc, "status_code", None)
    if code in answers:
        return answers[code](str(exc))
    return ValidationError({"non_field_errors": [str(exc)]})


ORDERINGS = {
    ordering.name: ordering
    for field in ("created_at", "updated_at", "finished_at", "id", "status", "task_name")
    for descending in (False, True)
    for ordering in [Ordering(field, descending, nullable=field == "finished_at")]
}
"""The ``?ordering=`` choices of the execution list, each with a tie-break on the id (so pages do
not overlap) and empty values last on both databases."""
DATETIMES = frozenset({"created_at", "updated_at", "finished_at"})


def _ordering(wanted: str) -> Ordering:
    """The order ``?ordering=wanted`` asks for; a 400 naming the choices if unknown."""
    if wanted not in ORDERINGS:
        choices = ", ".join(ORDERINGS)
        raise ValidationError({"ordering": [f"unknown ordering {wanted!r}; one of: {choices}"]})
    return ORDERINGS[wanted]


class ExecutionViewSet(ApiViewSet):
    """Durable executions: list, retrieve with steps and runs, start, cancel, retry, rerun,
    restart, and offer events."""

    permission_classes = [ExecutionPermission]
    pagination_class = KeysetPagination
    lookup_value_regex = "[^/]+"
    schema = JsonSchema()

    @documented(
        parameters=[
            *CURSOR_PAGES,
            OpenApiParameter(
                "status",
                str,
                enum=list(Status.values),
                description="only executions in this status",
            ),
            OpenApiParameter("task", str, description="only executions of this task"),
            OpenApiParameter(
                "ordering",
                str,
                enum=list(ORDERINGS),
                description="sort by this field, descending with a leading '-'"
                " (default -created_at); executions not finished come last by finished_at",
            ),
        ],
        responses={200: ExecutionSerializer(many=True), **errors(404)},
    )
    def list(self, request: Request) -> Response:
        """Executions, newest first or as ``ordering`` says, filtered by ``status`` and
        ``task``, a page at a time after ``cursor`` (see ``KeysetPagination``)."""
        ordering = _ordering(request.query_params.get("ordering") or "-created_at")
        executions: QuerySet[Execution] = Execution.objects.all()
        wanted = request.query_params.get("status")
        if wanted is not None:
            if wanted not in Status.values:
                choices = ", ".join(Status.values)
                raise ValidationError({"status": [f"unknown status {wanted!r}; one of: {choices}"]})
            executions = executions.filter(status=wanted)
        if request.query_params.get("task"):
            executions = executions.filter(task_name=request.query_params["task"])
        paginator = KeysetPagination(ordering, DATETIMES)
        page = paginator.paginate_queryset(executions, request, view=self)
        return paginator.get_paginated_response(ExecutionSerializer(page, many=True).data)

    @documented(parameters=[ID], responses={200: ExecutionDetailSerializer, **errors(404)})
    def retrieve(self, request: Request, pk: str) -> Response:
        """One execution with its steps."""
        try:
            info = DurableScheduler().get(pk)
        except ZartError as exc:
            raise as_api_error(exc) from exc
        return Response(ExecutionDetailSerializer(info).data)

    @documented(
        request=StartSerializer,
        responses={
            201: ExecutionDetailSerializer,
            200: ExecutionDetailSerializer,
            **errors(409, 415),
        },
    )
    def create(self, request: Request) -> Response:
        """Start a task: 201 when this request stored the execution; 200 when the same id was
        started already with the same task and input (nothing new is stored)."""
        form = StartSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            info = DurableScheduler().start(
                data["execution_id"], data["task"], data["input"], started_by=request.user
            )
        except ZartError as exc:
            raise as_api_error(exc, field="input") from exc
        answer = status.HTTP_201_CREATED if info.created else status.HTTP_200_OK
        return Response(ExecutionDetailSerializer(info).data, status=answer)

    @documented(
        request=None,
        parameters=[ID],
        responses={200: ExecutionDetailSerializer, **errors(404, 409, 415)},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Stop the execution for good."""
        scheduler = DurableScheduler()
        try:
            scheduler.cancel(pk)
        except ZartError as exc:
            raise as_api_error(exc) from exc
        return Response(ExecutionDetailSerializer(scheduler.get(pk)).data)

    @documented(
        request=None,
        parameters=[ID],
        responses={200: ExecutionDetailSerializer, **errors(404, 409, 415)},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        """Continue a failed execution from the step that failed, in a new run (409 unless it
        failed)."""
        return self._begin_run(pk, lambda scheduler: scheduler.retry(pk), "payload")

    @documented(
        request=RerunSerializer,
        parameters=[ID],
        responses={200: ExecutionDetailSerializer, **errors(404, 409, 415)},
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, pk: str) -> Response:
        """Run the execution again from the recorded step ``from_step``, in a new run (400 naming
        the recorded steps if it has none of that name; 409 while it is running)."""
        form = RerunSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        from_step = form.validated_data["from_step"]
        return self._begin_run(pk, lambda scheduler: scheduler.rerun(pk, from_step), "from_step")

    @documented(
        request=RestartSerializer,
        parameters=[ID],
        responses={200: ExecutionDetailSerializer, **errors(404, 409, 415)},
    )
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, pk: str) -> Response:
        """Run the execution again from the top, in a new run, with ``input`` if given (else
        the same input; 409 while it is running)."""
        form = RestartSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        new_input = form.validated_data["input"]
        return self._begin_run(pk, lambda scheduler: scheduler.restart(pk, new_input), "input")

    def _begin_run(
        self, pk: str, begin: Callable[[DurableScheduler], ExecutionInfo], field: str
    ) -> Response:
        """Begin a new run with ``begin``; its errors are answered as ``as_api_error`` says, a
        refused value naming ``field``."""
        try:
            info = begin(DurableScheduler())
        except ZartError as exc:
            raise as_api_error(exc, field=field) from exc
        return Response(ExecutionDetailSerializer(info).data)

    @documented(
        request=EventSerializer,
        parameters=[ID, EVENT],
        responses={202: EventOfferedSerializer, **errors(404, 409, 415)},
    )
    @action(detail=True, methods=["post"], url_path=r"events/(?P<name>[^/]+)")
    def events(self, request: Request, pk: str, name: str) -> Response:
        """Offer event ``name`` with ``payload``. A name an installed app delivers itself (an
        approval's, decided at /api/approvals/) is refused with the path to use."""
        form = EventSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        refusal = extensions.event_refusal(pk, name)
        if refusal is not None:
            raise PermissionDenied(refusal)
        try:
            DurableScheduler().offer_event(pk, name, form.validated_data["payload"])
        except EventReserved as exc:
            raise PermissionDenied(str(exc)) from exc
        except ZartError as exc:
            raise as_api_error(exc) from exc
        return Response({"execution_id": pk, "event": name}, status=status.HTTP_202_ACCEPTED)
