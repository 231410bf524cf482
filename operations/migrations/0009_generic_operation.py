"""Operations name no app: what an operation holds while active becomes a lock key ("vm:<id>")
and what it is about a generic relation, in place of foreign keys to vms and snapshots. Every
row keeps its VM (as its lock) and its snapshot (as its subject; a VM operation's subject is its
VM). The reconciler's records move to the vms app (state only: the tables stay)."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Q

VM_LOCK = "vm:"


def _content_type(apps, app_label, model):
    ContentType = apps.get_model("contenttypes", "ContentType")
    return ContentType.objects.get_or_create(app_label=app_label, model=model)[0]


def forward(apps, schema_editor):
    Operation = apps.get_model("operations", "Operation")
    vm_type = _content_type(apps, "vms", "vm")
    snapshot_type = _content_type(apps, "snapshots", "snapshot")
    rows = Operation.objects.exclude(vm=None, snapshot=None).only("vm_id", "snapshot_id")
    for operation in rows.iterator():
        fields = {}
        if operation.vm_id is not None:
            fields["lock"] = f"{VM_LOCK}{operation.vm_id}"
        if operation.snapshot_id is not None:
            fields.update(subject_type=snapshot_type, subject_id=str(operation.snapshot_id))
        elif operation.vm_id is not None:
            fields.update(subject_type=vm_type, subject_id=str(operation.vm_id))
        Operation.objects.filter(pk=operation.pk).update(**fields)


def backward(apps, schema_editor):
    Operation = apps.get_model("operations", "Operation")
    VM = apps.get_model("vms", "VM")
    Snapshot = apps.get_model("snapshots", "Snapshot")
    snapshot_type = _content_type(apps, "snapshots", "snapshot")
    for operation in Operation.objects.exclude(lock="", subject_id="").iterator():
        fields = {}
        if operation.lock.startswith(VM_LOCK):
            vm_id = operation.lock.removeprefix(VM_LOCK)
            if VM.objects.filter(pk=vm_id).exists():
                fields["vm_id"] = vm_id
        if operation.subject_type_id == snapshot_type.pk:
            if Snapshot.objects.filter(pk=operation.subject_id).exists():
                fields["snapshot_id"] = operation.subject_id
        Operation.objects.filter(pk=operation.pk).update(**fields)


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("operations", "0008_alter_operation_state"),
        ("snapshots", "0007_alter_snapshot_kind"),
        ("vms", "0004_vm_ip_address"),
    ]

    operations = [
        migrations.AddField(
            model_name="operation",
            name="lock",
            field=models.CharField(
                blank=True,
                default="",
                help_text="What it has to itself while queued or running (e.g. 'vm:<id>'); kept "
                "after it ends, to find a VM's operations, and emptied when that VM is deleted.",
                max_length=80,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="operation",
            name="subject_id",
            field=models.CharField(blank=True, default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="operation",
            name="subject_type",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="contenttypes.contenttype",
            ),
        ),
        migrations.RunPython(forward, backward),
        migrations.RemoveConstraint(model_name="operation", name="one_active_operation_per_vm"),
        migrations.RemoveField(model_name="operation", name="snapshot"),
        migrations.RemoveField(model_name="operation", name="vm"),
        migrations.AddIndex(
            model_name="operation",
            index=models.Index(fields=["lock", "-created_at"], name="operation_lock"),
        ),
        migrations.AddIndex(
            model_name="operation",
            index=models.Index(fields=["subject_type", "subject_id"], name="operation_subject"),
        ),
        migrations.AddConstraint(
            model_name="operation",
            constraint=models.UniqueConstraint(
                condition=Q(state__in=["queued", "running"]) & ~Q(lock=""),
                fields=("lock",),
                name="one_active_operation_per_lock",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="OrphanSighting"),
                migrations.DeleteModel(name="ReconcileRun"),
            ],
            database_operations=[],
        ),
    ]
