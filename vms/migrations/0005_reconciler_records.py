"""The reconciler's records belong to the vms app, which runs the reconciler: the models move
here from operations in the state only; their tables keep their names and every row."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0009_generic_operation"),
        ("vms", "0004_vm_ip_address"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ReconcileRun",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("started_at", models.DateTimeField()),
                        ("finished_at", models.DateTimeField()),
                        ("summary", models.TextField()),
                        (
                            "problems",
                            models.PositiveIntegerField(
                                default=0, help_text="Findings that needed action."
                            ),
                        ),
                    ],
                    options={"db_table": "operations_reconcilerun", "ordering": ["-started_at"]},
                ),
                migrations.CreateModel(
                    name="OrphanSighting",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[("domain", "Domain"), ("volume", "Volume")], max_length=8
                            ),
                        ),
                        ("name", models.CharField(max_length=255)),
                        ("first_seen", models.DateTimeField()),
                        (
                            "host",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="orphans",
                                to="vms.host",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "operations_orphansighting",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("host", "kind", "name"), name="orphan_sighting_unique"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
