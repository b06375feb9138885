"""Secrets stay secret on the error paths, and Kafka security settings reach both clients.

The running worker's logs are checked for its secrets by `test_bad_input` (all bad input)
and `test_faults` (a database outage); here the worker fails to start on purpose.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import faust
import pytest

from harness.worker import WorkerHarness
from monitor.settings import KafkaSettings
from pipelines.kafka_security import faust_credentials, kafka_python_config
from tests.alerts.conftest import TlsFiles, free_port
from tests.conftest import require_stack


@pytest.mark.stack
@pytest.mark.parametrize("reachable", [False, True], ids=["no server", "wrong password"])
def test_database_password_never_printed_when_start_fails(tmp_path: Path, reachable: bool) -> None:
    """Exit code 3 and a clear message, without the password that was in the URL."""
    require_stack()
    password = f"pw-{secrets.token_hex(12)}"
    port = 5432 if reachable else free_port()
    worker = WorkerHarness(
        tmp_path,
        "secret",
        FINMON_DATABASE__URL=f"postgresql+psycopg://finmon:{password}@127.0.0.1:{port}/finmon",
    )
    worker.start(wait=False)
    assert worker.process is not None
    assert worker.process.wait(120) == 3
    logs = worker.logs()
    assert "finmon: database unreachable" in logs
    assert ("password authentication failed" in logs) == reachable
    assert password not in logs


def test_sasl_ssl_settings_reach_both_kafka_clients() -> None:
    kafka = KafkaSettings(
        bootstrap_servers=["broker-1:9093"],
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="finmon",
        sasl_password="from-the-environment",  # type: ignore[arg-type]
    )
    credentials = faust_credentials(kafka)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "finmon" and credentials.password == "from-the-environment"
    assert str(credentials.mechanism.value) == "SCRAM-SHA-512"
    assert credentials.ssl_context is not None
    config = kafka_python_config(kafka)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "finmon"
    assert config["sasl_plain_password"] == "from-the-environment"
    assert config["ssl_context"] is not None
    assert "from-the-environment" not in repr(kafka)


def test_mutual_tls_settings_reach_both_kafka_clients(tls_files: TlsFiles) -> None:
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=tls_files.cert,
        ssl_certfile=tls_files.cert,
        ssl_keyfile=tls_files.key,
    )
    credentials = faust_credentials(kafka)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context.get_ca_certs()  # the configured CA, loaded
    config = kafka_python_config(kafka)
    assert config["security_protocol"] == "SSL" and "sasl_mechanism" not in config


def test_plaintext_has_no_credentials() -> None:
    kafka = KafkaSettings()
    assert faust_credentials(kafka) is None
    assert kafka_python_config(kafka) == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "PLAINTEXT",
    }
