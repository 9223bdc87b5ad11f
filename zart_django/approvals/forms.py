"""The inbox's and the admin's decision form: approve or reject, with a comment. No reviewer field:
the reviewer is always the logged-in user."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext_lazy as _

from .errors import ApprovalNotFound, ApprovalPermissionDenied
from .models import ApprovalRecord
from .services import decide


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        label=_("Decision"), choices=[("approve", _("Approve")), ("reject", _("Reject"))]
    )
    comment = forms.CharField(
        label=_("Comment"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": _("Comment (optional)")}),
    )

    @property
    def approved(self) -> bool:
        return self.cleaned_data["decision"] == "approve"

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
            )
        except ApprovalNotFound as exc:
            raise Http404(str(exc)) from exc
        except ApprovalPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
