"""One way to name a configuration: the sha256 of its canonical JSON.

Scoring runs, curated-set definitions and trained-model configs are identified by
`digest(...)` of everything that decides their content, so the same inputs always map to
the same row and a changed input to a new one. (Texts and pairs are content-addressed in
`rmcore.textnorm`; a source file by the sha256 of its bytes in `rmcore.ingest.sources`.)
"""

from __future__ import annotations

import hashlib
import json


def digest(**parts: object) -> str:
    """sha256 hex of `parts` as sorted-key JSON (non-JSON values by their `str`)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
