"""This app's step of `manage.py bootstrap`: an admin account, and how to log in."""

import secrets

from django.conf import settings

from core.bootstrap import Options

ADMIN_USERNAME = "admin"


def admin(out, options: Options) -> None:
    from accounts.models import User
    from accounts.services import user_create

    password_file = settings.DATA_DIR / "admin-password"
    if not User.objects.filter(is_superuser=True).exists():
        password = secrets.token_urlsafe(12)
        user_create(username=ADMIN_USERNAME, password=password, is_staff=True)
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.touch(mode=0o600)
        password_file.write_text(password)
        out.write("Created the admin account.")
    found = User.objects.filter(username=ADMIN_USERNAME, is_superuser=True).first()
    remembered = password_file.read_text().strip() if password_file.exists() else ""
    if found and remembered and found.check_password(remembered):
        out.write(f"Log in as {ADMIN_USERNAME!r} with password {remembered!r}.")
    else:
        out.write(
            "Log in with your admin account "
            f"(reset a password with `manage.py changepassword {ADMIN_USERNAME}`)."
        )
