"""Reserved event names: namespaces that an app built on the engine keeps for its own delivery path.

``DurableScheduler.offer_event`` (and so every HTTP path built on it) refuses a name in a reserved
namespace, whenever it arrives, before anything is stored. Only the app's own path delivers there
(``zart_django.approvals.decide`` delivers decisions to ``approval:<event>``), so a wait on such a
name can only ever be completed by that path: it holds by construction, not by a check a race could
slip past.
"""

from __future__ import annotations

_namespaces: dict[str, str] = {}


def reserve(prefix: str, how: str) -> None:
    """Reserve event names starting with ``prefix``; ``how`` tells a refused caller what to do."""
    _namespaces[prefix] = how


def reservation(name: str) -> str | None:
    """How to deliver ``name`` if it is reserved (the hint given to ``reserve``), else None."""
    for prefix, how in _namespaces.items():
        if name.startswith(prefix):
            return how
    return None
