from django.conf import settings
from django.contrib import admin
from django.contrib.auth import urls as auth_urls
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, include, path

from fleet.api.main import urlpatterns as api_urls
from fleet.web import metrics

PASSWORD_RESET_URLS = {
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
}


def account_urls(password_reset: bool) -> list[URLPattern]:
    """Django's account pages; those that reset a forgotten password only where mail can carry
    the link (EMAIL_HOST set): without mail they would promise an email that never comes."""
    return [
        url
        for url in auth_urls.urlpatterns
        if password_reset or url.name not in PASSWORD_RESET_URLS
    ]


def oidc_urls() -> list[URLPattern]:
    """mozilla-django-oidc's sign-on, callback and logout, reached without a login."""
    from django.contrib.auth.decorators import login_not_required
    from mozilla_django_oidc import urls as oidc

    patterns = list(oidc.urlpatterns)
    for pattern in patterns:
        pattern.callback = login_not_required(pattern.callback)
    return [path("oidc/", include(patterns))]


def project_urls(password_reset: bool) -> list[URLPattern]:
    admin_reset = [
        path(
            "admin/password_reset/",
            auth_views.PasswordResetView.as_view(),
            name="admin_password_reset",
        )
    ]
    return [
        *(admin_reset if password_reset else []),
        path("admin/", admin.site.urls),
        path("accounts/", include(account_urls(password_reset))),
        *(oidc_urls() if settings.OIDC_ENABLED else []),
        path("api/", include((api_urls(), "api"))),
        path("metrics", metrics.metrics, name="metrics"),
        path("", include("fleet.urls")),
    ]


urlpatterns = project_urls(password_reset=bool(settings.EMAIL_HOST))
