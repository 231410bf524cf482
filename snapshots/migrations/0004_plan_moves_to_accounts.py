"""The plan now belongs to accounts (see accounts 0004): forget it here, keep the table."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("snapshots", "0003_snapshot_owner_state_index"),
        ("accounts", "0004_plan_moves_here"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Plan")],
            database_operations=[],
        ),
    ]
