"""The filters of the inbox and the history, read from the query string: each narrows a query in
the database, so a page costs the same few queries whatever it holds. Values that do not parse
(an unknown outcome, a date that is not one) are ignored and shown as the form's errors."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce, TruncDate
from django.utils.translation import gettext_lazy as _

from zart_django.registry import default_registry

from .assignees import named
from .models import ApprovalRecord, ApprovalRequestQuerySet, RequestStatus


class Outcome:
    """The outcomes the history filters by (``ApprovalRequest.outcome`` says them in words)."""

    APPROVED, REJECTED, EXPIRED, CLOSED = "approved", "rejected", "expired", "closed"
    CHOICES = [
        ("", _("Any outcome")),
        (APPROVED, _("Approved")),
        (REJECTED, _("Rejected")),
        (EXPIRED, _("Expired")),
        (CLOSED, _("Closed undecided")),
    ]


def task_choices() -> list[tuple[str, str]]:
    """The tasks the code registers (``default_registry``), for a select: read without a
    query, where the requests' distinct task names would be a scan of every request."""
    return [("", _("All tasks")), *((name, name) for name in default_registry.names())]


class Assigned:
    """How a request reached the user's inbox, for the inbox's filter."""

    ME, GROUPS = "me", "groups"
    CHOICES = [
        ("", _("All my requests")),
        (ME, _("Assigned to me")),
        (GROUPS, _("Through my groups")),
    ]


class InboxFilter(forms.Form):
    """The inbox's filters: a task, a search of the title, the execution id and the summary, and
    whether the request names the user ("assigned to me") or reached them through a group or a
    permission ("my groups")."""

    assigned = forms.ChoiceField(label=_("Assigned"), required=False, choices=Assigned.CHOICES)
    task = forms.ChoiceField(label=_("Task"), required=False)
    q = forms.CharField(label=_("Search"), required=False, max_length=200)

    def __init__(self, data: Any, tasks: list[tuple[str, str]]) -> None:
        super().__init__(data)
        self.fields["task"].choices = tasks
        self.fields["q"].widget.attrs["placeholder"] = _("Title, execution id or summary")

    def apply(self, requests: ApprovalRequestQuerySet, user: Any) -> ApprovalRequestQuerySet:
        """``requests`` (``user``'s) narrowed to the valid filters given."""
        given = self.cleaned_data if self.is_valid() else {}
        if given.get("assigned") == Assigned.ME:
            requests = requests.filter(named(user))
        elif given.get("assigned") == Assigned.GROUPS:
            requests = requests.exclude(named(user))
        if given.get("task"):
            requests = requests.filter(execution__task_name=given["task"])
        if given.get("q"):
            text = given["q"]
            requests = requests.filter(
                Q(title__icontains=text)
                | Q(execution__id__icontains=text)
                | Q(summary__icontains=text)
            )
        return requests


class HistoryFilter(forms.Form):
    """The history's filters: reviewer (username or name), task, outcome, and a range of the days
    requests were closed (for the CSV export: the days decisions were taken)."""

    reviewer = forms.CharField(label=_("Reviewer"), required=False, max_length=150)
    task = forms.ChoiceField(label=_("Task"), required=False)
    outcome = forms.ChoiceField(label=_("Outcome"), required=False, choices=Outcome.CHOICES)
    since = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label=_("Until"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, data: Any, tasks: list[tuple[str, str]]) -> None:
        super().__init__(data)
        self.fields["task"].choices = tasks

    @property
    def given(self) -> dict[str, Any]:
        """The valid filters given (none if any is invalid)."""
        return {k: v for k, v in self.cleaned_data.items() if v} if self.is_valid() else {}

    def requests(self, requests: ApprovalRequestQuerySet) -> ApprovalRequestQuerySet:
        """Closed ``requests`` narrowed to the filters."""
        given = self.given
        if "reviewer" in given:
            requests = requests.filter(_decided(_reviewer_is(given["reviewer"])))
        if "task" in given:
            requests = requests.filter(execution__task_name=given["task"])
        outcome = given.get("outcome")
        if outcome in (Outcome.APPROVED, Outcome.REJECTED):
            approved = Q(approved=outcome == Outcome.APPROVED)
            requests = requests.filter(_decided(approved), status=RequestStatus.DECIDED)
        elif outcome == Outcome.EXPIRED:
            requests = requests.filter(status=RequestStatus.EXPIRED)
        elif outcome == Outcome.CLOSED:
            requests = requests.filter(status=RequestStatus.PENDING)
        closed_on = TruncDate(Coalesce("closed_at", "execution__finished_at"))
        if "since" in given:
            requests = requests.alias(closed_on=closed_on).filter(closed_on__gte=given["since"])
        if "until" in given:
            requests = requests.alias(closed_on=closed_on).filter(closed_on__lte=given["until"])
        return requests

    def records(self, records: QuerySet[ApprovalRecord]) -> QuerySet[ApprovalRecord]:
        """Decisions narrowed to the filters (expired and closed requests have none)."""
        given = self.given
        if "reviewer" in given:
            records = records.filter(_reviewer_is(given["reviewer"]))
        if "task" in given:
            records = records.filter(task_name=given["task"])
        outcome = given.get("outcome")
        if outcome in (Outcome.APPROVED, Outcome.REJECTED):
            records = records.filter(approved=outcome == Outcome.APPROVED)
        elif outcome:
            records = records.none()
        if "since" in given:
            records = records.filter(decided_at__date__gte=given["since"])
        if "until" in given:
            records = records.filter(decided_at__date__lte=given["until"])
        return records


def _reviewer_is(text: str) -> Q:
    return Q(reviewer__icontains=text) | Q(reviewer_name__icontains=text)


def _decided(condition: Q) -> Exists:
    """Whether the request has a decision matching ``condition`` (a record names its request;
    one written before records did matches its execution, run and event, as
    ``ApprovalRecord.decides`` says)."""
    linked = Q(request_id=OuterRef("pk")) | Q(
        request_id__isnull=True,
        execution_id=OuterRef("execution_id"),
        run=OuterRef("run"),
        event=OuterRef("event"),
        decided_at__gte=OuterRef("created_at"),
    )
    return Exists(ApprovalRecord.objects.filter(linked, condition))
