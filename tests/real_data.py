"""Where the verified real data is: $REGBENCH_REAL_DATA, or ../shared/data beside the
checkout; None when it is not there (tests that need it skip)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data"
_ROOT = Path(os.environ.get("REGBENCH_REAL_DATA", DEFAULT))
REAL_DATA: Path | None = _ROOT if (_ROOT / "ptb" / "ptb.train.txt").is_file() else None
SKIP_REASON = f"no real data at {_ROOT} (set REGBENCH_REAL_DATA to ../shared/data)"
