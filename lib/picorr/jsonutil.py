"""One place for turning results into plain JSON values (used by the CLI and sweep files)."""

from __future__ import annotations

import math


def plain(x):
    """JSON values only: numpy arrays and scalars to Python lists and numbers, NaN/inf to
    null, dict keys to strings."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "tolist"):
        return plain(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
