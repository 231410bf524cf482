from django.urls import path

from snapshots import browse_views, views

urlpatterns = [
    path("snapshots/", views.snapshot_list, name="snapshot_list"),
    path("snapshots/tree/", views.snapshot_tree_page, name="snapshot_tree"),
    path("vms/<uuid:pk>/tree/", views.vm_snapshot_tree, name="vm_snapshot_tree"),
    path("vms/<uuid:pk>/snapshot-dialogs/", views.vm_snapshot_dialogs, name="vm_snapshot_dialogs"),
    path("vms/<uuid:vm_pk>/snapshots/take/", views.snapshot_take, name="snapshot_take"),
    path("vms/<uuid:vm_pk>/snapshots/fork/", views.vm_fork, name="vm_fork"),
    path("snapshots/<uuid:pk>/row/", views.snapshot_list_row, name="snapshot_list_row"),
    path("snapshots/<uuid:pk>/restore/", views.snapshot_restore, name="snapshot_restore"),
    path("snapshots/<uuid:pk>/new-vm/", views.snapshot_new_vm, name="snapshot_new_vm"),
    path("snapshots/<uuid:pk>/pin/", views.snapshot_pin, name="snapshot_pin"),
    path("snapshots/<uuid:pk>/rename/", views.snapshot_rename, name="snapshot_rename"),
    path("snapshots/<uuid:pk>/delete/", views.snapshot_delete, name="snapshot_delete"),
    path("snapshots/<uuid:pk>/files/", browse_views.snapshot_files, name="snapshot_files"),
    path(
        "snapshots/<uuid:pk>/files/download/",
        browse_views.snapshot_file_download,
        name="snapshot_file_download",
    ),
    path("snapshots/<uuid:pk>/compare/", browse_views.snapshot_compare, name="snapshot_compare"),
]
