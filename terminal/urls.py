from django.urls import path

from terminal import views

urlpatterns = [
    path("vms/<uuid:pk>/terminal/", views.vm_terminal, name="vm_terminal"),
]
