"""What every benchmark script shares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path | None, data: dict[str, Any]) -> None:
    """Write the results to ``path`` (creating its folder), if one was given, and say so."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    print(f"wrote {path}")
