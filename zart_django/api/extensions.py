"""What an app built on the engine adds to its REST API, registered from its ``AppConfig.ready()``.

Routes added here are served by ``include("zart_django.api.urls")`` beside the engine's and listed
in its OpenAPI schema; permissions added here are named in every 403 of the API; an event check
added here refuses, with the path to use instead, event names that app delivers itself. The core
imports no app built on it: ``zart_django.approvals`` adds ``approvals/`` this way. Nothing here
imports Django REST framework, so an app may register without it installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    """A viewset to register on the API's router: ``viewset`` is its dotted path, imported when
    the API's URLconf loads."""

    prefix: str
    viewset: str
    basename: str


EventCheck = Callable[[str, str], "str | None"]
"""``check(execution_id, name)``: why ``name`` may not be offered through the API, or None."""

routes: dict[str, Route] = {}
permissions: dict[str, str] = {}
event_checks: list[EventCheck] = []


def add_route(prefix: str, viewset: str, basename: str) -> None:
    """Serve ``viewset`` (a dotted path) at ``<api>/<prefix>/``."""
    routes[prefix] = Route(prefix, viewset, basename)


def add_permission(name: str, allows: str) -> None:
    """Name permission ``name`` (``app_label.codename``) and what it ``allows`` in refusals."""
    permissions[name] = allows


def add_event_check(check: EventCheck) -> None:
    """Refuse (403) an event offered through the API when ``check`` gives a reason."""
    if check not in event_checks:
        event_checks.append(check)


def event_refusal(execution_id: str, name: str) -> str | None:
    """The first reason a registered check gives to refuse event ``name``, if any."""
    for check in event_checks:
        reason = check(execution_id, name)
        if reason is not None:
            return reason
    return None
