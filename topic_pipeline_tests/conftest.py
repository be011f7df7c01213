import os
import pytest

# Tests never reach a model hub: the embedding model ships in a package, and a pointer to a hub name
# must fail fast rather than retry a network this machine does not have.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REQUIRE_SERVICES = os.environ.get("TOPIC_PIPELINE_REQUIRE_SERVICES") == "1"

def require_service(reason: str) -> None:
    """Skip a test whose service is absent, unless CI demands every service (then fail)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)
