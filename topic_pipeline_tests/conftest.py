import os
import pytest

REQUIRE_SERVICES = os.environ.get("TOPIC_PIPELINE_REQUIRE_SERVICES") == "1"

def require_service(reason: str) -> None:
    """Skip a test whose service is absent, unless CI demands every service (then fail)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)
