"""The moved plan table takes this app's name."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_plan_moves_here"),
        ("snapshots", "0004_plan_moves_to_accounts"),
    ]

    operations = [migrations.AlterModelTable(name="plan", table=None)]
