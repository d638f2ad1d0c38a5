"""``nowplaying schemas``: write (or check) the JSON Schema files of the topics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nowplaying.events import json_schemas
from nowplaying.settings import Settings


def render(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def run(settings: Settings, args: argparse.Namespace) -> int:
    out: Path = args.out
    stale = []
    for name, schema in json_schemas().items():
        path = out / name
        text = render(schema)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print("out of date (run `nowplaying schemas`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0
