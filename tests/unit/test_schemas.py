"""The JSON Schema files under schemas/ agree with the pydantic models of the contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from nowplaying.events import (
    DeadLetter,
    RecommendationMessage,
    TrackEnd,
    TrackStart,
    json_schemas,
    parse_play_event,
)
from nowplaying.outcomes import OutcomeMessage
from nowplaying.steer_events import SteerEvent

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
MODEL_FILES: list[tuple[type[Any], str]] = [
    (TrackStart, "play-event.schema.json"),
    (TrackEnd, "play-event.schema.json"),
    (RecommendationMessage, "now-playing-recommendation.schema.json"),
    (DeadLetter, "dead-letter.schema.json"),
    (OutcomeMessage, "outcome.schema.json"),
    (SteerEvent, "steer-event.schema.json"),
]


def load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return schema


def examples_of(model: type[Any]) -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = model.model_config["json_schema_extra"]["examples"]
    return examples


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = load(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def check_schemas(folder: Path) -> subprocess.CompletedProcess[str]:
    """``nowplaying schemas --check --out folder`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "nowplaying.cli", "schemas", "--check", "--out", str(folder)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_the_schema_files_exist_and_are_valid_2020_12() -> None:
    assert sorted(p.name for p in SCHEMAS.glob("*.schema.json")) == sorted(json_schemas())
    for name in json_schemas():
        assert load(name)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        validator(name)


def test_schema_files_are_up_to_date() -> None:
    done = check_schemas(SCHEMAS)
    assert done.returncode == 0, done.stderr


def test_schemas_check_detects_a_stale_file(tmp_path: Path) -> None:
    for name in json_schemas():
        (tmp_path / name).write_text((SCHEMAS / name).read_text(encoding="utf-8"), "utf-8")
    stale = tmp_path / "dead-letter.schema.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace("reason", "cause"), "utf-8")
    done = check_schemas(tmp_path)
    assert done.returncode == 1
    assert "dead-letter.schema.json" in done.stderr


@pytest.mark.parametrize(("model", "name"), MODEL_FILES, ids=lambda v: getattr(v, "__name__", v))
def test_every_model_example_validates_against_its_schema_file(model: type[Any], name: str) -> None:
    examples = examples_of(model)
    assert examples, f"{model.__name__} has no examples"
    check = validator(name)
    for example in examples:
        check.validate(example)
        model.model_validate(example)  # and the model itself accepts it


@pytest.mark.parametrize("model", [TrackStart, TrackEnd])
def test_play_event_examples_parse_as_their_own_type(model: type[Any]) -> None:
    for example in examples_of(model):
        assert isinstance(parse_play_event(json.dumps(example).encode()), model)


@pytest.mark.parametrize(
    "change",
    [
        {"event_type": "track_pause"},
        {"ts": "1764355200000"},
        {"user_id": "new\nline"},
        {"session_id": "c1\x85"},
        {"user_id": ""},
        {"track_id": "x" * 129},
        {"track_id": "\U0001f3b5" * 129},
        {"schema_version": 2},
    ],
    ids=[
        "event_type",
        "ts-string",
        "id-control",
        "id-c1-control",
        "id-empty",
        "id-length",
        "id-length-code-points",
        "schema_version",
    ],
)
def test_schema_and_parser_agree_on_invalid_play_events(change: dict[str, Any]) -> None:
    event = examples_of(TrackStart)[0] | change
    assert not validator("play-event.schema.json").is_valid(event)
    assert not isinstance(parse_play_event(json.dumps(event).encode()), TrackStart)


@pytest.mark.parametrize(
    "ids",
    [
        {"user_id": "ユーザー-3", "session_id": "user with space 4"},
        {"track_id": "\U0001f3b5" * 128},  # 128 code points, 256 UTF-16 units
        {"user_id": "listener@example.com", "track_id": 'br{ace} "quoted" 100%'},
    ],
    ids=["unicode-and-space", "128-astral-characters", "email-braces-quotes"],
)
def test_schema_and_parser_agree_on_valid_opaque_ids(ids: dict[str, Any]) -> None:
    event = examples_of(TrackStart)[0] | ids
    assert validator("play-event.schema.json").is_valid(event)
    assert isinstance(parse_play_event(json.dumps(event).encode()), TrackStart)


def test_track_end_without_skipped_is_invalid_in_schema_and_parser() -> None:
    event = {k: v for k, v in examples_of(TrackEnd)[0].items() if k != "skipped"}
    assert not validator("play-event.schema.json").is_valid(event)
    assert not isinstance(parse_play_event(json.dumps(event).encode()), TrackEnd)
