"""Koding's plan table: Free 0 snapshots, Hobbyist 1, Developer 3, Professional 5.

New accounts start on Developer, so that a fresh installation can take snapshots at all; admins
choose another default in the admin.
"""

from django.db import migrations

GIB = 1024**3

PLANS = [
    # slug, name, snapshots, bytes, vms, default, position
    ("free", "Free", 0, 0, 1, False, 0),
    ("hobbyist", "Hobbyist", 1, 10 * GIB, 2, False, 1),
    ("developer", "Developer", 3, 30 * GIB, 5, True, 2),
    ("professional", "Professional", 5, 50 * GIB, 10, False, 3),
]


def seed(apps, schema_editor):
    Plan = apps.get_model("snapshots", "Plan")
    for slug, name, snapshots, size, vms, default, position in PLANS:
        Plan.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "max_snapshots": snapshots,
                "max_snapshot_bytes": size,
                "max_vms": vms,
                "is_default": default,
                "position": position,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("snapshots", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
