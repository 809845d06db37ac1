import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from fleet.models import Lab, Worker

pytestmark = pytest.mark.django_db  # full_clean() checks uniqueness in the database


def _worker(**fields) -> Worker:
    return Worker(**{"region": "us-east-1", "instance_id": "i-0123456789abcdef0", **fields})


@pytest.mark.parametrize("instance_id", ["i-01234567", "i-0123456789abcdef0"])
def test_it_accepts_8_and_17_hex_digit_instance_ids(instance_id):
    _worker(instance_id=instance_id).full_clean()


@pytest.mark.parametrize(
    "instance_id", ["", "i-0123", "i-0123456789ABCDEF0", "x-01234567", "i-0123456789abcdef0z"]
)
def test_it_rejects_malformed_instance_ids(instance_id):
    with pytest.raises(ValidationError) as error:
        _worker(instance_id=instance_id).full_clean()
    assert "instance_id" in error.value.message_dict


def test_it_rejects_regions_outside_aws_regions(settings):
    settings.AWS_REGIONS = ["us-east-1"]
    with pytest.raises(ValidationError) as error:
        _worker(region="eu-west-1").full_clean()
    assert "not one of the configured regions" in error.value.message_dict["region"][0]


@pytest.mark.parametrize("endpoint", ["ftp://10.0.0.1", "not a url", "https://"])
def test_it_rejects_endpoints_that_are_not_http_urls(endpoint):
    with pytest.raises(ValidationError) as error:
        _worker(cml_endpoint=endpoint).full_clean()
    assert "cml_endpoint" in error.value.message_dict


@pytest.mark.parametrize("endpoint", ["https://10.0.0.1", "http://127.0.0.1:8080/cml/i-01234567"])
def test_it_accepts_http_endpoints(endpoint):
    _worker(cml_endpoint=endpoint).full_clean()


def test_instance_ids_are_unique_per_region():
    _worker().save()
    _worker(region="eu-west-1").save()  # the same id in another region is another instance
    with pytest.raises(IntegrityError):
        _worker().save()


def test_lab_ids_are_unique_per_worker(worker):
    other = Worker.objects.create(region="us-east-1", instance_id="i-01234567")
    Lab.objects.create(worker=worker, lab_id="abc")
    Lab.objects.create(worker=other, lab_id="abc")
    with pytest.raises(IntegrityError):
        Lab.objects.create(worker=worker, lab_id="abc")


def test_cml_percentages_come_from_used_and_total():
    worker = _worker(cml_memory_used=4, cml_memory_total=16, cml_disk_used=None, cml_disk_total=8)
    assert worker.cml_memory_percent == 25.0
    assert worker.cml_disk_percent is None
