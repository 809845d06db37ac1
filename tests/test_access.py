"""Every page needs a login and the right role: viewer, operator, admin, anonymous, outsider."""

import pytest

PAGES = ["/", "/workers/{pk}/"]


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(client, worker, page):
    url = page.format(pk=worker.pk)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.parametrize("page", PAGES)
def test_users_without_a_role_get_403(client, outsider, worker, page):
    client.force_login(outsider)
    assert client.get(page.format(pk=worker.pk)).status_code == 403


@pytest.mark.parametrize("page", PAGES)
def test_viewers_see_the_pages(client, viewer, worker, page):
    client.force_login(viewer)
    response = client.get(page.format(pk=worker.pk))
    assert response.status_code == 200
    assert "cml-worker-01" in response.content.decode()


def test_login_page_logs_a_user_in(client, viewer):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    response = client.post("/accounts/login/", {"username": "vera", "password": "pw-vera"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_bad_credentials_get_a_form_error(client, viewer):
    response = client.post("/accounts/login/", {"username": "vera", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_healthz_needs_no_login(client, db):
    assert client.get("/healthz").status_code in (200, 503)


def test_admin_pages_need_staff(client, viewer):
    client.force_login(viewer)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
