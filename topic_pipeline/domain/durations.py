"""A time left or taken, as the progress lines of every long step word it."""


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 min`` or ``1.5 h``: as precise as a person reads a remaining time."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
