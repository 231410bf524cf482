from django.urls import path

from snapshots import views

urlpatterns = [
    path("snapshots/", views.snapshot_list, name="snapshot_list"),
    path("vms/<uuid:vm_pk>/snapshots/take/", views.snapshot_take, name="snapshot_take"),
    path("snapshots/<uuid:pk>/restore/", views.snapshot_restore, name="snapshot_restore"),
    path("snapshots/<uuid:pk>/new-vm/", views.snapshot_new_vm, name="snapshot_new_vm"),
    path("snapshots/<uuid:pk>/rename/", views.snapshot_rename, name="snapshot_rename"),
    path("snapshots/<uuid:pk>/delete/", views.snapshot_delete, name="snapshot_delete"),
]
