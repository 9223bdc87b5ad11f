"""Retention: an index to find finished executions by age, and decisions that name their request.

``ApprovalRecord.request`` is added empty on existing rows (no row is rewritten, as the trigger of
0003 requires); one decision per request replaces one per (execution, event), so an execution id
reused after a purge can be decided again.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("zart_django", "0003_approvalrecord_immutable"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="approvalrecord",
            name="zart_decision_once",
        ),
        migrations.AddField(
            model_name="approvalrecord",
            name="request",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                help_text="The request decided; empty on records written before version 0004.",
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="zart_django.approvalrequest",
            ),
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                condition=models.Q(
                    ("status__in", ["completed", "failed", "cancelled", "timed_out"])
                ),
                fields=["finished_at"],
                name="zart_execution_finished",
            ),
        ),
        migrations.AddConstraint(
            model_name="approvalrecord",
            constraint=models.UniqueConstraint(
                fields=("request",), name="zart_decision_once_per_request"
            ),
        ),
    ]
