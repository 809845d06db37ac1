"""Password-reset pages exist only where mail is configured (EMAIL_HOST): without it they would
promise an email that never comes."""

import re
from types import ModuleType

import pytest
from django.core import mail

from monitor.urls import project_urls

RESET_PAGES = [
    "/accounts/password_reset/",
    "/accounts/password_reset/done/",
    "/accounts/reset/MQ/set-password/",
    "/accounts/reset/done/",
]


@pytest.fixture
def with_mail(settings):
    """The project's URLs as they are when EMAIL_HOST is set (mail goes to django's outbox)."""
    settings.EMAIL_HOST = "smtp.example.com"
    urls = ModuleType("urls_with_mail")
    urls.urlpatterns = project_urls(password_reset=True)
    settings.ROOT_URLCONF = urls


@pytest.mark.parametrize("url", RESET_PAGES)
def test_without_mail_the_reset_pages_are_not_routed(client, db, url):
    assert client.get(url).status_code == 404


def test_without_mail_the_login_pages_offer_no_reset(client, db):
    assert "Forgotten your password" not in client.get("/accounts/login/").content.decode()
    assert "Forgotten your login" not in client.get("/admin/login/").content.decode()


def test_with_mail_a_forgotten_password_is_reset_by_email(client, viewer, with_mail):
    viewer.email = "vera@example.com"
    viewer.save()
    assert "Forgotten your password" in client.get("/accounts/login/").content.decode()
    assert "Forgotten your login" in client.get("/admin/login/").content.decode()
    response = client.post("/accounts/password_reset/", {"email": "vera@example.com"})
    assert response.status_code == 302
    [message] = mail.outbox
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", message.body).group(1)
    form = client.get(link, follow=True)
    assert form.status_code == 200
    new = "a-new-long-password-42"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    login = client.post("/accounts/login/", {"username": "vera", "password": new})
    assert login.status_code == 302
