from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("account/tokens/", views.tokens, name="tokens"),
    path("account/tokens/<int:pk>/revoke/", views.token_delete, name="token_revoke"),
    path("account/ssh-keys/", views.ssh_keys, name="ssh_keys"),
    path("account/ssh-keys/<uuid:pk>/delete/", views.ssh_key_remove, name="ssh_key_delete"),
    path(
        "account/password/",
        auth_views.PasswordChangeView.as_view(success_url="/"),
        name="password_change",
    ),
]
