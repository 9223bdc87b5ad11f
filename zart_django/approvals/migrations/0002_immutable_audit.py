"""On PostgreSQL, triggers refuse UPDATE and DELETE of the audit rows (approval records and
reassignments); elsewhere nothing (the models and their querysets refuse it everywhere).

TRUNCATE (``manage.py flush``, the test database's flush between tests) is not refused. A later
migration that must rewrite such rows has to ``ALTER TABLE ... DISABLE TRIGGER`` around it.
"""

from typing import Any

from django.db import migrations

AUDITED = {
    # model: (function, trigger, what the error calls it, who writes it)
    "ApprovalRecord": (
        "zart_refuse_approvalrecord_change",
        "zart_approvalrecord_immutable",
        "an approval record",
        "approval records are written once by decide() and never changed",
    ),
    "Reassignment": (
        "zart_refuse_reassignment_change",
        "zart_reassignment_immutable",
        "a reassignment",
        "reassignments are written once by reassign() and never changed",
    ),
}


def _table(apps: Any, schema_editor: Any, model: str) -> str:
    return schema_editor.quote_name(apps.get_model("zart_approvals", model)._meta.db_table)


def create_triggers(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for model, (function, trigger, called, hint) in AUDITED.items():
        schema_editor.execute(
            f"""
            CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{called} is immutable: % refused on %', TG_OP, TG_TABLE_NAME
                    USING HINT = '{hint}';
            END;
            $$
            """,
            None,  # no parameters: the % of RAISE are not placeholders
        )
        schema_editor.execute(
            f"CREATE TRIGGER {trigger} BEFORE UPDATE OR DELETE"
            f" ON {_table(apps, schema_editor, model)} FOR EACH ROW EXECUTE FUNCTION {function}()"
        )


def drop_triggers(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for model, (function, trigger, _called, _hint) in AUDITED.items():
        table = _table(apps, schema_editor, model)
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}()")


class Migration(migrations.Migration):
    dependencies = [
        ("zart_approvals", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(create_triggers, drop_triggers, elidable=False),
    ]
