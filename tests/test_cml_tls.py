"""Verified TLS to CML with CML_CA_BUNDLE: a real HTTPS simulated CML on loopback, certificates
made here by a throwaway CA."""

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleet.collection.collect import collect
from simulator.cml import CMLSimulator
from tests.fleet_fixtures import running
from tests.test_settings import PRODUCTION, _manage


@dataclass
class Pki:
    ca_bundle: Path  # the CA that signed the server's certificate
    other_ca_bundle: Path  # a CA that signed nothing here
    server_context: ssl.SSLContext
    wrong_host_context: ssl.SSLContext  # signed by the CA, but for another host name


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, issuer, public_key, signing_key, *, ca: bool, extensions=()):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _certificate(_name(name), _name(name), key.public_key(), key, ca=True)
    path = directory / f"{name}.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key, path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_key, ca_path = _ca(directory, "fleet-test-ca")
    _, _, other_path = _ca(directory, "some-other-ca")

    def server_context(name: str, alt_name: x509.GeneralName) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        names = x509.SubjectAlternativeName([alt_name])
        server = _certificate(
            _name(name), ca.subject, key.public_key(), ca_key, ca=False, extensions=[names]
        )
        (directory / f"{name}.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / f"{name}.pem", directory / f"{name}.key")
        return context

    return Pki(
        ca_bundle=ca_path,
        other_ca_bundle=other_path,
        server_context=server_context(
            "cml-worker", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        ),
        wrong_host_context=server_context("cml-elsewhere", x509.DNSName("cml.example.com")),
    )


@pytest.fixture
def https_cml(fleet_settings, fleet_workers, pki, settings):
    """The fleet's running workers answered by an HTTPS CML, with TLS verification on."""
    with CMLSimulator(
        username=settings.CML_USERNAME, password=settings.CML_PASSWORD, tls=pki.server_context
    ) as sim:
        for worker in running(fleet_settings, fleet_workers):
            sim.add_worker(worker.instance_id)
        settings.CML_ENDPOINT_TEMPLATE = sim.endpoint_template
        settings.CML_VERIFY_TLS = True
        yield running(fleet_settings, fleet_workers)[0]


def _collect_one(worker):
    collect([worker.pk])
    worker.refresh_from_db()
    return worker


def test_with_the_ca_bundle_an_https_worker_is_observed(https_cml, pki, settings):
    settings.CML_CA_BUNDLE = str(pki.ca_bundle)
    worker = _collect_one(https_cml)
    assert worker.cml_endpoint.startswith("https://127.0.0.1:")
    assert worker.service_status == "available" and worker.last_error == ""
    assert worker.cml_version == "2.9.1"


def test_a_certificate_for_another_host_is_a_tls_error_even_from_the_trusted_ca(
    fleet_settings, fleet_workers, pki, settings
):
    worker = running(fleet_settings, fleet_workers)[0]
    with CMLSimulator(
        username=settings.CML_USERNAME, password=settings.CML_PASSWORD, tls=pki.wrong_host_context
    ) as sim:
        sim.add_worker(worker.instance_id)
        settings.CML_ENDPOINT_TEMPLATE = sim.endpoint_template
        settings.CML_VERIFY_TLS = True
        settings.CML_CA_BUNDLE = str(pki.ca_bundle)
        worker = _collect_one(worker)
    assert worker.service_status == "unavailable"
    assert "TLS certificate not accepted" in worker.last_error
    assert "mismatch" in worker.last_error


@pytest.mark.parametrize("bundle", [None, "other"], ids=["public CAs only", "another CA"])
def test_a_certificate_no_trusted_ca_signed_is_a_tls_error(https_cml, pki, settings, bundle):
    settings.CML_CA_BUNDLE = str(pki.other_ca_bundle) if bundle else None
    worker = _collect_one(https_cml)
    assert worker.service_status == "unavailable"
    assert "TLS certificate not accepted" in worker.last_error
    assert "set CML_CA_BUNDLE" in worker.last_error


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "/nonexistent/cml-ca.pem",
            "CML_CA_BUNDLE='/nonexistent/cml-ca.pem': cannot read the file",
        ),
        ("pyproject.toml", "CML_CA_BUNDLE='pyproject.toml': no PEM CA certificate in the file"),
    ],
)
def test_a_ca_bundle_that_cannot_be_used_stops_start_up(value, message):
    result = _manage("check", **{**PRODUCTION, "CML_CA_BUNDLE": value})
    assert result.returncode != 0
    assert message in result.stderr


def test_a_ca_bundle_with_verification_off_stops_start_up(pki):
    env = {**PRODUCTION, "CML_CA_BUNDLE": str(pki.ca_bundle), "CML_VERIFY_TLS": "false"}
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "cannot be used with CML_VERIFY_TLS=false" in result.stderr
    result = _manage("check", **{**PRODUCTION, "CML_CA_BUNDLE": str(pki.ca_bundle)})
    assert result.returncode == 0, result.stderr
