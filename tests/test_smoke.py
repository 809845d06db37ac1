import pytest


@pytest.mark.django_db
def test_login_required(client):
    response = client.get("/")
    assert response.status_code == 302
