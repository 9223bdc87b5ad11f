"""Who may do what through the API: Django model permissions, per action."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

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


class ExecutionPermission(BasePermission):
    """Reading executions needs ``view_execution``; starting ``add_execution``; cancelling,
    retrying, rerunning and restarting ``change_execution``; offering an event ``add_event``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        needed = _NEEDED.get(getattr(view, "action", None) or "")
        return bool(request.user and request.user.is_authenticated) and (
            needed is None or request.user.has_perm(needed)
        )
