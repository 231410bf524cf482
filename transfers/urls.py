from django.urls import path

from transfers import views

urlpatterns = [
    path("snapshots/import/", views.snapshot_import, name="snapshot_import"),
    path("snapshots/<uuid:pk>/exports/", views.snapshot_exports, name="snapshot_exports"),
    path("snapshots/<uuid:pk>/export/", views.snapshot_export, name="snapshot_export"),
    path("exports/<uuid:pk>/download/", views.export_download, name="export_download"),
    path("exports/<uuid:pk>/delete/", views.export_delete, name="export_delete"),
]
