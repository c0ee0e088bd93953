"""One measured figure against its baseline, and whether it meets its target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    name: str
    ours: float | None
    baseline: float | None
    unit: str
    baseline_label: str = ""
    # A target is either a ratio ours/baseline (at least, or at most when `lower_is_better`), or
    # a bound on ours itself (`target_value`, in `unit`).
    target_ratio: float | None = None
    target_value: float | None = None
    lower_is_better: bool = False
    raw: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.baseline:
            return None
        return self.ours / self.baseline

    @property
    def target(self) -> str:
        sign = "<=" if self.lower_is_better else ">="
        if self.target_ratio is not None:
            return f"ratio {sign} {self.target_ratio:g}"
        if self.target_value is not None:
            return f"{sign} {self.target_value:g} {self.unit}"
        return "-"

    @property
    def met(self) -> bool | None:
        if self.error is not None:
            return False
        value = self.ratio if self.target_ratio is not None else self.ours if self.target_value is not None else None
        bound = self.target_ratio if self.target_ratio is not None else self.target_value
        if bound is None:
            return None
        if value is None:
            return False
        return value <= bound if self.lower_is_better else value >= bound

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ours": self.ours,
            "baseline": self.baseline,
            "unit": self.unit,
            "baseline_label": self.baseline_label,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "raw": self.raw,
            "error": self.error,
        }
