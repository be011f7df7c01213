"""Credentials in URLs: hidden in every form a user may write them, and in every driver message quoting them."""

import pytest

from topic_pipeline.errors import DatabaseUnavailableError
from topic_pipeline.inputs.corpus import SqlSource, _driver_message, load_corpus
from topic_pipeline.redaction import mask_url, redact

# Each URL form that carries a secret, with the secret and how the URL is shown.
URL_FORMS = {
    "password": (
        "postgresql+psycopg2://alice:s3cretPW@127.0.0.1:1/corpus",
        "s3cretPW",
        "postgresql+psycopg2://alice:***@127.0.0.1:1/corpus",
    ),
    "percent-encoded password": (
        "postgresql+psycopg2://bob:p%40ssW0rd@127.0.0.1:1/db",
        "p@ssW0rd",
        "postgresql+psycopg2://bob:***@127.0.0.1:1/db",
    ),
    "query password": (
        "postgresql+psycopg2://alice@127.0.0.1:1/corpus?password=qu3ryPW&sslmode=disable",
        "qu3ryPW",
        "postgresql+psycopg2://alice@127.0.0.1:1/corpus?password=***&sslmode=disable",
    ),
    "query ssl key password": (
        "postgresql+psycopg2://alice@127.0.0.1:1/corpus?sslpassword=k3yPW",
        "k3yPW",
        "postgresql+psycopg2://alice@127.0.0.1:1/corpus?sslpassword=***",
    ),
    "token": (
        "https://tracker.example/?access_token=t0kenValue",
        "t0kenValue",
        "https://tracker.example/?access_token=***",
    ),
    "unencoded @ in the password": (
        "postgresql+psycopg2://alice:head@tail9Secret@127.0.0.1:1/corpus",
        "tail9Secret",
        "postgresql+psycopg2://alice:***@127.0.0.1:1/corpus",
    ),
}


@pytest.mark.parametrize("form", URL_FORMS)
def test_every_url_form_is_shown_without_its_secret(form):
    url, secret, shown = URL_FORMS[form]
    assert mask_url(url) == shown
    assert secret not in mask_url(url)
    assert redact(f"connecting to {url} failed: bad secret {secret}", url) == "connecting to *** failed: bad secret ***"


def test_plain_urls_are_shown_as_they_are_and_unparsable_ones_not_at_all():
    assert mask_url("postgresql://bob@h/db") == "postgresql://bob@h/db"
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert (
        mask_url("postgresql://h/db?sslmode=require&application_name=tp")
        == "postgresql://h/db?application_name=tp&sslmode=require"
    )
    assert mask_url("not a url :// at all hunter22") == "<unparsable URL>"


def test_driver_message_keeps_its_first_line_without_secrets():
    url = "postgresql://alice:s3cretPW@h/db"
    message = 'FATAL: password "s3cretPW" rejected\nDETAIL: more s3cretPW here'
    assert _driver_message(message, url) == 'FATAL: password "***" rejected'
    assert _driver_message("", url) == ""


@pytest.mark.parametrize("form", [form for form, (url, _, _) in URL_FORMS.items() if url.startswith("postgresql")])
def test_a_database_that_cannot_be_reached_names_it_without_the_secret(form):
    """Through the real driver: port 1 on loopback refuses the connection, and the message quotes the URL's host."""
    url, secret, _ = URL_FORMS[form]
    with pytest.raises(DatabaseUnavailableError) as raised:
        load_corpus(SqlSource(url))
    message = str(raised.value)
    assert secret not in message
    assert secret.split("@")[-1] not in message  # not even the tail of a password split at an unencoded '@'
    if form == "unencoded @ in the password":
        assert "percent-encoded (%40" in message
    else:
        assert "cannot reach the database at" in message and "127.0.0.1:1" in message


@pytest.mark.parametrize(
    "url", ["postgresql://alice:p@ss:w0rd@db.example:5432/corpus", "nosuchdialect://alice:hunter22@db/x"]
)
def test_an_unparsable_url_is_refused_without_quoting_it(url):
    with pytest.raises(DatabaseUnavailableError, match="invalid database URL") as raised:
        load_corpus(SqlSource(url))
    for fragment in ("w0rd", "hunter22", "ss:w0rd"):
        assert fragment not in str(raised.value)


def test_mlflow_run_links_carry_no_credentials(tmp_path):
    """The run link stored in Dagster's metadata is built from the MLflow address, which may hold a token."""
    from topic_pipeline.integrations.mlflow_tracking import MlflowTracker, local_tracking_uri

    tracker = MlflowTracker(local_tracking_uri(tmp_path), "links", ui_url="https://robot:t0kenValue@mlflow.example")
    link = tracker.run_url("0123")
    assert "t0kenValue" not in link and link.startswith("https://robot:***@mlflow.example/#/experiments/")
    assert link.endswith("/runs/0123?workflowType=machine_learning")  # opens on the Runs view, not the GenAI one
    # An artifact's link (the report's page) opens that artifact in the run's Artifacts tab, as seen in MLflow 3.17.
    report = tracker.run_url("0123", "report/report.html")
    assert "t0kenValue" not in report and report.endswith(
        "/runs/0123/artifacts/report/report.html?workflowType=machine_learning"
    )


def test_a_driver_connection_string_in_the_query_is_hidden():
    url = "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BODBC%7D%3BSERVER%3Ddb%3BUID%3Dalice%3BPWD%3Dc0nnSecret"
    assert "c0nnSecret" not in mask_url(url) and "odbc_connect=***" in mask_url(url)
    assert redact("login failed: PWD=c0nnSecret rejected", url) == "login failed: PWD=*** rejected"


def test_mlflow_errors_carry_no_credentials_of_the_tracking_uri(monkeypatch):
    """A tracking server that cannot be reached: MLflow's error quotes the URI; ours is redacted."""
    from mlflow.exceptions import MlflowException

    from conftest import free_loopback_port
    from topic_pipeline.integrations.mlflow_tracking import MlflowTracker

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    tracker = MlflowTracker(f"http://robot:Tr4ckSecret@127.0.0.1:{free_loopback_port()}", "unreachable")
    with pytest.raises((MlflowException, RuntimeError)) as raised:
        tracker.experiment_id
    assert "Tr4ckSecret" not in str(raised.value) and "127.0.0.1" in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
