"""Reserved event names: namespaces that an app built on the engine keeps for its own delivery path.

``DurableScheduler.offer_event`` (and so every HTTP path built on it) refuses a name in a reserved
namespace, whenever it arrives, before anything is stored. Only the app's own path delivers there
(``zart_django.approvals.decide`` delivers decisions to ``approval:<event>``, a child execution's
end is delivered to its parent as ``child:<id>``), so a wait on such a name can only ever be
completed by that path: it holds by construction, not by a check a race could slip past.
"""

from __future__ import annotations

_namespaces: dict[str, str] = {}
_binding: set[str] = set()


def reserve(prefix: str, how: str, *, binding: bool = True) -> None:
    """Reserve event names starting with ``prefix``; ``how`` tells a refused caller what to do.

    ``binding``: a delivery there binds the execution (a person's decision), so once it completed
    the wait the execution is parked on, ``cancel`` is refused until the execution acted on it.
    """
    _namespaces[prefix] = how
    if binding:
        _binding.add(prefix)
    else:
        _binding.discard(prefix)


def reservation(name: str) -> str | None:
    """How to deliver ``name`` if it is reserved (the hint given to ``reserve``), else None."""
    for prefix, how in _namespaces.items():
        if name.startswith(prefix):
            return how
    return None


def binds(name: str) -> bool:
    """Whether a delivery to ``name`` binds its execution (see ``reserve``)."""
    return any(name.startswith(prefix) for prefix in _binding)
