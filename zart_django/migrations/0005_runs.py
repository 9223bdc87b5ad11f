"""Numbered runs: `run` on executions, steps, events, approval requests and decisions (their
unique constraints now per run; a decision is
unique per request since 0004), and `Run`, how each run of a retried, rerun or restarted
execution began and ended. Existing rows are run 1."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("zart_django", "0004_retention"),
    ]

    operations = [
        migrations.CreateModel(
            name="Run",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.PositiveIntegerField()),
                (
                    "began",
                    models.CharField(
                        choices=[
                            ("start", "Start"),
                            ("retry", "Retry"),
                            ("rerun", "Rerun"),
                            ("restart", "Restart"),
                        ],
                        max_length=8,
                    ),
                ),
                ("from_step", models.CharField(blank=True, max_length=200)),
                ("input", models.JSONField(null=True)),
                ("started_at", models.DateTimeField()),
                (
                    "status",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("pending", "Pending"),
                            ("running", "Running"),
                            ("waiting", "Waiting"),
                            ("completed", "Completed"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                            ("timed_out", "Timed out"),
                        ],
                        max_length=16,
                    ),
                ),
                ("output", models.JSONField(blank=True, null=True)),
                ("error", models.TextField(blank=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "ordering": ["execution", "number"],
            },
        ),
        migrations.AlterModelOptions(
            name="stepresult",
            options={"ordering": ["execution", "run", "position"]},
        ),
        migrations.RemoveConstraint(
            model_name="approvalrequest",
            name="zart_approval_once",
        ),
        migrations.RemoveConstraint(
            model_name="event",
            name="zart_event_once",
        ),
        migrations.RemoveConstraint(
            model_name="stepresult",
            name="zart_step_position",
        ),
        migrations.AddField(
            model_name="approvalrecord",
            name="run",
            field=models.PositiveIntegerField(
                default=1, help_text="The run whose request it decided."
            ),
        ),
        migrations.AddField(
            model_name="approvalrequest",
            name="run",
            field=models.PositiveIntegerField(default=1),
        ),
        migrations.AddField(
            model_name="event",
            name="run",
            field=models.PositiveIntegerField(default=1),
        ),
        migrations.AddField(
            model_name="execution",
            name="run",
            field=models.PositiveIntegerField(default=1),
        ),
        migrations.AddField(
            model_name="stepresult",
            name="run",
            field=models.PositiveIntegerField(default=1),
        ),
        migrations.AddConstraint(
            model_name="approvalrequest",
            constraint=models.UniqueConstraint(
                fields=("execution", "run", "event"), name="zart_approval_run_once"
            ),
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.UniqueConstraint(
                fields=("execution", "run", "name"), name="zart_event_run_once"
            ),
        ),
        migrations.AddConstraint(
            model_name="stepresult",
            constraint=models.UniqueConstraint(
                fields=("execution", "run", "position"), name="zart_step_run_position"
            ),
        ),
        migrations.AddField(
            model_name="run",
            name="execution",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="runs",
                to="zart_django.execution",
            ),
        ),
        migrations.AddConstraint(
            model_name="run",
            constraint=models.UniqueConstraint(
                fields=("execution", "number"), name="zart_run_number"
            ),
        ),
    ]
