"""What a locked-out login sees: the same login page (the site's or the admin's), saying why.

django-axes calls `lockout_response` instead of its plain-text default. The answer is 429, with
the login form and one message: locked, for how long, and who can unlock it sooner.
"""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.forms import AuthenticationForm
from django.forms.utils import ErrorList
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse


class LockedOutForm(AuthenticationForm):
    """An unbound login form whose one error is the lockout message."""

    def __init__(self, request: HttpRequest, message: str) -> None:
        super().__init__(request, initial={"username": request.POST.get("username", "")})
        self.message = message

    def non_field_errors(self) -> ErrorList:
        return self.error_class([self.message], error_class="nonfield")


def lockout_message() -> str:
    minutes = settings.LOGIN_COOLOFF_MINUTES
    return (
        f"Too many failed logins for this user from your address: logging in is locked for "
        f"{minutes} minute{'s' if minutes != 1 else ''} after the last try. An administrator "
        "can unlock it sooner (Admin → Access attempts)."
    )


def lockout_response(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """The login page with the lockout message. (django-axes passes the original response and
    the credentials in an order that differs between its sync and async paths: unused here.)"""
    form = LockedOutForm(request, lockout_message())
    next_url = request.POST.get(REDIRECT_FIELD_NAME, request.GET.get(REDIRECT_FIELD_NAME, ""))
    if request.path == reverse("admin:login"):
        context = {
            **admin.site.each_context(request),
            "title": "Log in",
            "app_path": request.get_full_path(),
            "form": form,
            REDIRECT_FIELD_NAME: next_url or reverse("admin:index"),
        }
        return render(request, "admin/login.html", context, status=429)
    context = {"form": form, REDIRECT_FIELD_NAME: next_url}
    return render(request, "registration/login.html", context, status=429)
