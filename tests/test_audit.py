"""The audit record of a decision cannot be changed or deleted: not one by one, not in bulk, and on
PostgreSQL not even by raw SQL. What must still work does: deleting executions, flushing tables."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, transaction

from tests.approval_helpers import start_parked
from zart_django.approvals import decide
from zart_django.approvals.models import ApprovalRecord, ApprovalRequest
from zart_django.models import Execution

pytestmark = pytest.mark.django_db

TABLE = ApprovalRecord._meta.db_table


@pytest.fixture
def record(manager) -> ApprovalRecord:
    start_parked("audit-1")
    return decide("audit-1", manager, approved=True, comment="ok")


def stored() -> list[dict]:
    return list(ApprovalRecord.objects.order_by("pk").values())


@pytest.mark.parametrize(
    "change",
    [
        lambda: ApprovalRecord.objects.filter(execution_id="audit-1").update(approved=False),
        lambda: ApprovalRecord.objects.update(comment="rewritten"),
        lambda: ApprovalRecord.objects.filter(approved=True).delete(),
        lambda: ApprovalRecord.objects.all().delete(),
        lambda: Execution.objects.get(pk="audit-1").approval_records.update(approved=False),
        lambda: ApprovalRecord.objects.bulk_update(
            [ApprovalRecord(pk=ApprovalRecord.objects.get().pk, approved=False)], ["approved"]
        ),
        lambda: ApprovalRecord.objects.bulk_create(
            [ApprovalRecord(**{**ApprovalRecord.objects.values().get(), "id": None})],
            update_conflicts=True,
            unique_fields=["execution", "event"],
            update_fields=["approved"],
        ),
    ],
    ids=[
        "filter-update",
        "manager-update",
        "filter-delete",
        "all-delete",
        "related-manager-update",
        "bulk-update",
        "upsert",
    ],
)
def test_bulk_changes_are_refused_and_change_nothing(record, change):
    before = stored()
    with pytest.raises(ValueError, match="approval decision is immutable"):
        change()
    assert stored() == before


def test_a_record_built_with_an_existing_id_cannot_overwrite_it(record):
    before = stored()
    forged = ApprovalRecord(**{**ApprovalRecord.objects.values().get(), "approved": False})
    with pytest.raises(IntegrityError), transaction.atomic():
        forged.save()
    with pytest.raises(ValueError, match="immutable"):
        forged.save(update_fields=["approved"])
    assert stored() == before


@pytest.mark.parametrize(
    "statement",
    [
        f"UPDATE {TABLE} SET approved = false",
        f"UPDATE {TABLE} SET comment = 'rewritten' WHERE execution_id = 'audit-1'",
        f"DELETE FROM {TABLE}",
    ],
)
def test_raw_sql_cannot_change_a_record_on_postgresql(record, statement):
    if connection.vendor != "postgresql":
        pytest.skip("the trigger exists on PostgreSQL only")
    before = stored()
    with pytest.raises(DatabaseError, match="approval record is immutable"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert stored() == before


@pytest.mark.parametrize("how", ["instance", "queryset"])
def test_deleting_an_execution_keeps_its_decision(record, how):
    before = stored()
    if how == "instance":
        Execution.objects.get(pk="audit-1").delete()
    else:
        Execution.objects.filter(pk="audit-1").delete()
    assert not Execution.objects.filter(pk="audit-1").exists()
    assert not ApprovalRequest.objects.exists()
    assert stored() == before


@pytest.mark.django_db(transaction=True)
def test_flushing_the_database_empties_the_records_table(manager):
    """What ``manage.py flush`` and the flush between transactional tests do (TRUNCATE on
    PostgreSQL, DELETE on SQLite, which has no trigger)."""
    start_parked("audit-2")
    decide("audit-2", manager, approved=False)
    call_command("flush", interactive=False, verbosity=0)
    assert not ApprovalRecord.objects.exists()
    assert not Execution.objects.exists()
