"""On PostgreSQL, a trigger refuses UPDATE and DELETE of approval records; elsewhere nothing.

TRUNCATE (``manage.py flush``, the test database's flush between tests) is not refused. A later
migration that must rewrite records has to ``ALTER TABLE ... DISABLE TRIGGER`` around it.
"""

from typing import Any

from django.db import migrations

FUNCTION = "zart_refuse_approvalrecord_change"
TRIGGER = "zart_approvalrecord_immutable"


def _table(apps: Any, schema_editor: Any) -> str:
    model = apps.get_model("zart_approvals", "ApprovalRecord")
    return schema_editor.quote_name(model._meta.db_table)


def create_trigger(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"""
        CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'an approval record is immutable: % refused on %', TG_OP, TG_TABLE_NAME
                USING HINT = 'approval records are written once by decide() and never changed';
        END;
        $$
        """,
        None,  # no parameters: the % of RAISE are not placeholders
    )
    schema_editor.execute(
        f"CREATE TRIGGER {TRIGGER} BEFORE UPDATE OR DELETE ON {_table(apps, schema_editor)}"
        f" FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
    )


def drop_trigger(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {_table(apps, schema_editor)}")
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


class Migration(migrations.Migration):
    dependencies = [
        ("zart_approvals", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(create_trigger, drop_trigger, elidable=False),
    ]
