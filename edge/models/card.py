"""The model card: the JSON file beside every model, `<name>.card.json` next to `<name>.onnx`.

It says what the model expects (metrics in column order, window length, dtype and
shape), the alarm threshold, how well it did on held-out data, how it was trained, and
the sha256 of the `.onnx` it describes, which `OnnxScorer.load` checks before it opens
the model. Unknown fields are ignored so that an older gateway can read a newer card.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import ModelError

CARD_SUFFIX = ".card.json"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class CardInputs(_Frozen):
    name: str = "window"
    metrics: tuple[str, ...] = Field(min_length=1)
    window: int = Field(gt=0)
    dtype: Literal["float32"] = "float32"
    shape: tuple[int, int, int]

    @model_validator(mode="after")
    def _shape_matches(self) -> CardInputs:
        if self.shape != (1, self.window, len(self.metrics)):
            raise ValueError(f"shape {list(self.shape)} is not [1, window, len(metrics)]")
        return self


class CardMetrics(_Frozen):
    """Figures on held-out simulated runs the model never saw."""

    precision: float = Field(ge=0, le=1)
    recall: float = Field(ge=0, le=1)
    lead_time_s: float | None = Field(description="failure time minus first alarm; None: missed")
    windows: int = Field(default=0, ge=0, description="windows of the fault run scored")
    int8_agreement: float | None = Field(
        default=None, ge=0, le=1, description="share of alarm decisions the float model agrees with"
    )
    false_alarms_per_hour: float = Field(ge=0)
    scenario: str = "bearing-wear"


class CardTraining(_Frozen):
    seed: int
    samples: int = Field(gt=0, description="readings of normal operation trained on")
    minutes: float = Field(gt=0)
    period_s: float = Field(gt=0)
    source: str = Field(description="the reading source (simulator) that made the data")
    evaluation: str = Field(default="", description="the held-out runs behind `metrics`")
    command: str = ""


class ModelCard(_Frozen):
    card_version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")
    version: str = Field(min_length=1, max_length=64)
    created: str
    description: str = ""
    score: str = Field(description="what the output means; higher is more anomalous")
    inputs: CardInputs
    threshold: float = Field(gt=0)
    metrics: CardMetrics
    training: CardTraining
    quantization: Literal["int8-dynamic"] | None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


def card_path(model_path: Path) -> Path:
    """`dir/bearing.onnx` -> `dir/bearing.card.json`."""
    return model_path.with_name(model_path.stem + CARD_SUFFIX)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_card(model_path: Path) -> ModelCard:
    """The card beside `model_path`; `ModelError` if it is missing or invalid."""
    path = card_path(model_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(
            f"model card {path} is missing (expected beside {model_path.name})"
        ) from None
    except OSError as exc:
        raise ModelError(f"model card {path} cannot be read: {exc}") from exc
    try:
        return ModelCard.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "card"
        raise ModelError(f"model card {path} is invalid: {where}: {first['msg']}") from exc


def write_card(card: ModelCard, model_path: Path) -> Path:
    path = card_path(model_path)
    path.write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path
