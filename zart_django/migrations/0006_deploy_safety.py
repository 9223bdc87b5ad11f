# Deploy safety: the blocked status and its time, and the patch marker step kind.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("zart_django", "0005_runs"),
    ]

    operations = [
        migrations.AddField(
            model_name="execution",
            name="blocked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="execution",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("running", "Running"),
                    ("waiting", "Waiting"),
                    ("completed", "Completed"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                    ("timed_out", "Timed out"),
                    ("blocked", "Blocked"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="run",
            name="status",
            field=models.CharField(
                blank=True,
                choices=[
                    ("pending", "Pending"),
                    ("running", "Running"),
                    ("waiting", "Waiting"),
                    ("completed", "Completed"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                    ("timed_out", "Timed out"),
                    ("blocked", "Blocked"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="stepresult",
            name="kind",
            field=models.CharField(
                choices=[
                    ("step", "Step"),
                    ("event", "Event wait"),
                    ("sleep", "Sleep"),
                    ("patch", "Patch marker"),
                ],
                default="step",
                max_length=8,
            ),
        ),
    ]
