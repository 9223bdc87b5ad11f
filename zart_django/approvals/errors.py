"""Why a decision was refused; each maps to one HTTP status in the inbox, the admin and the API."""

from __future__ import annotations

from zart_django.errors import ZartError


class ApprovalError(ZartError):
    """Base class of the errors ``decide`` raises; nothing is stored when one is raised."""

    status_code = 400


class ApprovalNotFound(ApprovalError, LookupError):
    """The execution has no request for a decision (unknown id, or it never asked for one)."""

    status_code = 404

    def __init__(self, execution_id: str, event: str | None = None) -> None:
        what = f" for event {event!r}" if event else ""
        super().__init__(f"execution {execution_id!r} has no approval request{what}")
        self.execution_id = execution_id


class ApprovalPermissionDenied(ApprovalError):
    """The user lacks the permission this request needs."""

    status_code = 403

    def __init__(self, execution_id: str, permission: str) -> None:
        super().__init__(
            f"you need the permission {permission!r} to decide execution {execution_id!r}"
        )
        self.permission = permission


class ApprovalAlreadyDecided(ApprovalError):
    """Someone decided this request already; the first decision stands."""

    status_code = 409


class ApprovalClosed(ApprovalError):
    """The request can no longer be decided: its wait timed out or the execution ended."""

    status_code = 409
