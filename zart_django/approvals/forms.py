"""The inbox's and the admin's decision form: approve or reject, with a comment. No reviewer field:
the reviewer is always the logged-in user."""

from __future__ import annotations

from django import forms


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Comment (optional)"}),
    )

    @property
    def approved(self) -> bool:
        return self.cleaned_data["decision"] == "approve"
