"""The approvals' REST API, served at ``<api>/approvals/`` by ``include("zart_django.api.urls")``
once this app is installed (``ApprovalsConfig.ready`` registers it): the open requests a user may
decide, one request by execution id, and deciding it through ``decide``."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from zart_django.api.base import ApiViewSet
from zart_django.api.pagination import PAGES, Pagination
from zart_django.api.schema import JsonSchema, documented, errors
from zart_django.api.serializers import NameField, TextField
from zart_django.api.views import ID, as_api_error
from zart_django.errors import ZartError

from .errors import ApprovalInvalid, ApprovalNotFound
from .models import ApprovalRecord, ApprovalRequest, Reassignment, Source
from .services import decidable_by, decide, find_request, may_see, reassign


class DecideSerializer(serializers.Serializer):
    """``POST /approvals/{id}/decide/``. The reviewer is the authenticated user, never a field."""

    approved = serializers.BooleanField()
    comment = TextField(required=False, allow_blank=True, default="")
    event = NameField(required=False, trim_whitespace=False)
    data = serializers.DictField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The values of the request's decision form (see its ``form``), by field name.",
    )


class ReassignSerializer(serializers.Serializer):
    """``POST /approvals/{id}/reassign/``: hand the request to the user ``to``, saying why."""

    to = TextField(
        min_length=1,
        max_length=150,
        trim_whitespace=False,
        help_text='A username (or "user:<username>").',
    )
    reason = TextField(min_length=1, trim_whitespace=False)
    event = NameField(required=False, trim_whitespace=False)


class ReassignmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Reassignment
        fields = [
            "execution_id",
            "event",
            "reassigned_by",
            "to",
            "reason",
            "assignees_before",
            "assignees_after",
            "reassigned_at",
        ]


class DecisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApprovalRecord
        fields = [
            "execution_id",
            "run",
            "event",
            "approved",
            "reviewer",
            "reviewer_name",
            "comment",
            "source",
            "decided_at",
            "delegated_by",
            "data",
        ]


class ApprovalRequestSerializer(serializers.ModelSerializer):
    task = serializers.CharField(source="execution.task_name")
    outcome = serializers.CharField()
    progress = serializers.CharField()
    decision = serializers.SerializerMethodField()
    votes = DecisionSerializer(many=True)

    class Meta:
        model = ApprovalRequest
        fields = [
            "execution_id",
            "run",
            "task",
            "event",
            "title",
            "summary",
            "permission",
            "assignees",
            "required",
            "allow_requester",
            "form",
            "outcome",
            "progress",
            "created_at",
            "closed_at",
            "decision",
            "votes",
        ]

    def get_decision(self, request: ApprovalRequest) -> dict[str, Any] | None:
        record = request.record
        return DecisionSerializer(record).data if record is not None else None


class ApprovalViewSet(ApiViewSet):
    """Approval requests: the ones waiting for me, one by execution id, and deciding one."""

    permission_classes = [IsAuthenticated]
    pagination_class = Pagination
    lookup_value_regex = "[^/]+"
    schema = JsonSchema()

    @documented(
        parameters=PAGES, responses={200: ApprovalRequestSerializer(many=True), **errors(404)}
    )
    def list(self, request: Request) -> Response:
        """Open requests the authenticated user may decide, newest first, paginated."""
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(decidable_by(request.user), request, view=self)
        return paginator.get_paginated_response(ApprovalRequestSerializer(page, many=True).data)

    @documented(parameters=[ID], responses={200: ApprovalRequestSerializer, **errors(404)})
    def retrieve(self, request: Request, pk: str) -> Response:
        """The execution's latest approval request and its outcome (for those who may decide it
        or read executions; others get 404)."""
        try:
            found = find_request(pk)
        except ZartError as exc:
            raise as_api_error(exc) from exc
        if not may_see(request.user, found):
            raise as_api_error(ApprovalNotFound(pk))
        return Response(ApprovalRequestSerializer(found).data)

    @documented(
        request=DecideSerializer,
        parameters=[ID],
        responses={201: DecisionSerializer, **errors(400, 403, 404, 409, 415)},
    )
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, pk: str) -> Response:
        """Vote to approve or reject as the authenticated user (a ``reviewer`` field is ignored):
        400 for decision ``data`` the request's form refuses, naming the field; 403 for a user
        who is not an assignee or who started the execution; 409 once decided, voted on by this
        user, closed, or when its form no longer imports. The vote that rejects it, or that
        brings the approvals to ``required``, decides it and resumes the execution."""
        form = DecideSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = form.validated_data
        try:
            record = decide(
                pk,
                request.user,
                approved=data["approved"],
                comment=data["comment"],
                source=Source.API,
                event=data.get("event"),
                data=data["data"],
            )
        except ZartError as exc:
            raise _api_error(exc) from exc
        return Response(DecisionSerializer(record).data, status=status.HTTP_201_CREATED)

    @documented(
        request=ReassignSerializer,
        parameters=[ID],
        responses={201: ReassignmentSerializer, **errors(400, 403, 404, 409, 415)},
    )
    @action(detail=True, methods=["post"])
    def reassign(self, request: Request, pk: str) -> Response:
        """Hand the open request to the user ``to`` with a ``reason``: an assignee hands over
        their own assignment; a holder of ``zart_approvals.reassign_approval`` replaces all
        assignees. 400 without a reason, or for a ``to`` that is no active user, is the caller,
        the requester or voted already; 403 for anyone else; 409 once it is closed."""
        form = ReassignSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = form.validated_data
        try:
            entry = reassign(
                pk, request.user, to=data["to"], reason=data["reason"], event=data.get("event")
            )
        except ZartError as exc:
            raise _api_error(exc) from exc
        return Response(ReassignmentSerializer(entry).data, status=status.HTTP_201_CREATED)


def _api_error(exc: ZartError) -> Exception:
    """``as_api_error``, with a refused input named: ``{"data": {"amount": [...]}}``."""
    if isinstance(exc, ApprovalInvalid):
        return ValidationError({exc.field: exc.details or [str(exc)]})
    return as_api_error(exc)
