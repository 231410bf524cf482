import uuid
from django.db import migrations, models


def make_identity(apps, schema_editor):
    apps.get_model("core", "Installation").objects.get_or_create(key=1)


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='Installation',
            fields=[
                ('key', models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ('uuid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.RunPython(make_identity, migrations.RunPython.noop),
    ]
