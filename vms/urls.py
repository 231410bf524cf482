from django.urls import path

from vms import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("vms/new/", views.vm_new, name="vm_new"),
    path("vms/<uuid:pk>/", views.vm_detail, name="vm_detail"),
    path("vms/<uuid:pk>/live/", views.vm_live, name="vm_live"),
    path("vms/<uuid:pk>/console/", views.vm_console, name="vm_console"),
    path("vms/<uuid:pk>/<slug:action>/", views.vm_action, name="vm_action"),
]
