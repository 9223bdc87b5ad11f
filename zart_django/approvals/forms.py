"""The inbox's and the admin's forms: approve or reject, with a comment and the request's decision
data; and reassigning a request. No reviewer field: the reviewer is always the logged-in user."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext_lazy as _

from .errors import ApprovalFormMissing, ApprovalNotFound, ApprovalPermissionDenied
from .models import ApprovalRecord, ApprovalRequest, Reassignment
from .services import data_form, decide, reassign

DATA_PREFIX = "data"


class DecisionForm(forms.Form):
    """Approve/reject and a comment, followed by the fields of the request's decision form
    (``data_form``, prefixed ``data-``) when it has one."""

    decision = forms.ChoiceField(
        label=_("Decision"), choices=[("approve", _("Approve")), ("reject", _("Reject"))]
    )
    comment = forms.CharField(
        label=_("Comment"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": _("Comment (optional)")}),
    )

    def __init__(
        self, data: Any = None, approval: ApprovalRequest | None = None, **kwargs: Any
    ) -> None:
        super().__init__(data, **kwargs)
        self.data_form: forms.BaseForm | None = None
        self.form_missing = ""
        if approval is not None:
            try:
                form_class = data_form(approval)
            except ApprovalFormMissing as exc:
                self.form_missing = str(exc)
            else:
                if form_class is not None:
                    self.data_form = form_class(data, prefix=DATA_PREFIX)

    def is_valid(self) -> bool:
        valid = super().is_valid()
        return (self.data_form is None or self.data_form.is_valid()) and valid

    @property
    def approved(self) -> bool:
        return self.cleaned_data["decision"] == "approve"

    def decision_data(self) -> dict[str, Any] | None:
        """The decision form's values as posted, by field name, for ``decide`` to validate."""
        if self.data_form is None:
            return None
        return {name: self.data_form[name].data for name in self.data_form.fields}

    def decide(self, execution_id: str, user: Any, source: str) -> ApprovalRecord:
        """Decide as ``user`` (a valid form only). No request: ``Http404``; no permission:
        ``PermissionDenied``; any other refusal raises its ``ZartError`` for the page to show."""
        try:
            return decide(
                execution_id,
                user,
                approved=self.approved,
                comment=self.cleaned_data["comment"],
                source=source,
                data=self.decision_data(),
            )
        except ApprovalNotFound as exc:
            raise Http404(str(exc)) from exc
        except ApprovalPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc


class ReassignForm(forms.Form):
    """Hand a request to another user, saying why."""

    to = forms.CharField(max_length=150, label="Reassign to (username)")
    reason = forms.CharField(
        max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Why"})
    )

    def reassign(self, execution_id: str, user: Any) -> Reassignment:
        """Reassign as ``user`` (a valid form only); errors as ``DecisionForm.decide``."""
        try:
            return reassign(
                execution_id, user, self.cleaned_data["to"], self.cleaned_data["reason"]
            )
        except ApprovalNotFound as exc:
            raise Http404(str(exc)) from exc
        except ApprovalPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
