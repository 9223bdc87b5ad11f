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
    """The user may not do this: not an assignee (or lacking the permission the request needs),
    the person who started the execution, or reassigning without the right."""

    status_code = 403

    def __init__(self, execution_id: str, permission: str, reason: str | None = None) -> None:
        super().__init__(
            reason or f"you need the permission {permission!r} to decide execution {execution_id!r}"
        )
        self.permission = permission


class ApprovalAlreadyDecided(ApprovalError):
    """Someone decided this request already; the first decision stands."""

    status_code = 409


class ApprovalClosed(ApprovalError):
    """The request can no longer be decided: its wait timed out or the execution ended."""

    status_code = 409


class ApprovalInvalid(ApprovalError):
    """The decision or reassignment is malformed: decision data its form refuses (the message
    names each field), data for a request without a form, a reassignment without a reason or
    to nobody. ``field`` names the input at fault; ``details`` holds the form's messages per
    field of the decision data."""

    status_code = 400

    def __init__(
        self,
        message: str,
        field: str = "non_field_errors",
        details: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.details = details


class ApprovalFormMissing(ApprovalError):
    """The request's decision form can no longer be imported (a deploy removed or renamed it):
    nobody can decide it until the form is back."""

    status_code = 409
