"""The one ``/readyz`` document both processes answer, checked field for field."""

from __future__ import annotations

import json
from typing import Any

from nowplaying.readiness import Readiness

#: Every key of the document, for the worker and the API alike.
READINESS_KEYS = {"ready", "model_version", "dependencies", "variants", "failing"}


def readiness_document(status: int, body: str | bytes | dict[str, Any]) -> Readiness:
    """The parsed document; asserts its exact keys and that the status agrees with ``ready``."""
    data: dict[str, Any] = json.loads(body) if isinstance(body, str | bytes) else body
    assert set(data) == READINESS_KEYS, data
    document = Readiness.model_validate(data)
    assert data["failing"] == document.failing, data
    assert status == (200 if document.ready else 503), (status, data)
    return document
