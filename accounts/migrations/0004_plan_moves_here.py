"""The plan moves from snapshots to accounts, next to the user it limits; every row is kept.

State first (the table keeps its name and rows), then the table is renamed to this app's.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_apitoken"),
        ("snapshots", "0003_snapshot_owner_state_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Plan",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("slug", models.SlugField(max_length=32, unique=True)),
                        ("name", models.CharField(max_length=64)),
                        ("max_snapshots", models.PositiveIntegerField(help_text="Snapshots an account may keep.")),
                        ("max_snapshot_bytes", models.BigIntegerField(help_text="Bytes on disk an account's snapshots may take.")),
                        ("max_vms", models.PositiveIntegerField(default=5, help_text="VMs an account may have.")),
                        ("is_default", models.BooleanField(default=False, help_text="Given to new accounts.")),
                        ("position", models.PositiveSmallIntegerField(default=0)),
                    ],
                    options={
                        "ordering": ["position", "name"],
                        "db_table": "snapshots_plan",
                        "constraints": [
                            models.UniqueConstraint(condition=models.Q(("is_default", True)), fields=("is_default",), name="one_default_plan"),
                            models.CheckConstraint(condition=models.Q(("max_snapshot_bytes__gte", 0)), name="plan_bytes_not_negative"),
                        ],
                    },
                ),
                migrations.AlterField(
                    model_name="user",
                    name="plan",
                    field=models.ForeignKey(blank=True, help_text="Empty means the default plan.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name="users", to="accounts.plan"),
                ),
            ],
            database_operations=[],
        ),
    ]
