"""Who may do what through the API: Django model permissions, per action."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from . import extensions

_NEEDED = {
    "list": "zart_django.view_execution",
    "retrieve": "zart_django.view_execution",
    "create": "zart_django.add_execution",
    "cancel": "zart_django.change_execution",
    "retry": "zart_django.change_execution",
    "rerun": "zart_django.change_execution",
    "restart": "zart_django.change_execution",
    "events": "zart_django.add_event",
}

PERMISSIONS = {
    "zart_django.view_execution": "read executions",
    "zart_django.add_execution": "start them",
    "zart_django.change_execution": "cancel, retry, rerun and restart them",
    "zart_django.add_event": "offer events to them",
}
"""Every permission the engine's API asks for, with what it allows (apps built on it add theirs
through ``zart_django.api.extensions``)."""


def refusal(needed: str) -> str:
    """The 403 message for a user lacking ``needed``: what is needed, and every permission there
    is, so whoever grants it knows which to give."""
    known = {**PERMISSIONS, **extensions.permissions}
    choices = "; ".join(f"{name} ({what})" for name, what in known.items())
    return f"this needs the permission {needed}. The API's permissions: {choices}."


class ExecutionPermission(BasePermission):
    """Reading executions needs ``view_execution``; starting ``add_execution``; cancelling,
    retrying, rerunning and restarting ``change_execution``; offering an event ``add_event``.
    A refusal names the permission needed and the ones that exist."""

    def has_permission(self, request: Request, view: Any) -> bool:
        needed = _NEEDED.get(getattr(view, "action", None) or "")
        if needed is not None:
            self.message = refusal(needed)
        return bool(request.user and request.user.is_authenticated) and (
            needed is None or request.user.has_perm(needed)
        )
