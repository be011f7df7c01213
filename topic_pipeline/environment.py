"""What a process's settings are read from: its environment variables and working directory."""

from __future__ import annotations

import hashlib
import os


def digest() -> str:
    """Changes whenever the environment or the working directory does. A digest, so the environment's
    secrets are not kept a second time in the process."""
    state = repr((os.getcwd(), sorted(os.environ.items()))).encode()
    return hashlib.sha256(state).hexdigest()
