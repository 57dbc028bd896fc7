"""A deterministic, seeded train/val/test split, stratified by label when there are labels."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from assay.errors import UserInputError
from assay.optimizer.config import SplitConfig
from assay.records import Sample

MAX_STRATA = 20  # more distinct references than this: free text, not labels


@dataclass(frozen=True)
class Split:
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    stratified: bool

    def ids(self) -> dict[str, list[str]]:
        return {name: [s.id for s in part] for name, part in self.parts().items()}

    def parts(self) -> dict[str, list[Sample]]:
        return {"train": self.train, "val": self.val, "test": self.test}


def split_samples(samples: Sequence[Sample], config: SplitConfig) -> Split:
    if len(samples) < 6:
        raise UserInputError(
            f"Optimization needs at least 6 rows to split into train/val/test (got {len(samples)})",
            "add rows to the dataset",
        )
    strata = _strata(samples)
    rng = random.Random(config.seed)
    parts: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for group in strata:
        shuffled = list(group)
        rng.shuffle(shuffled)
        for name, chunk in _cut(shuffled, config).items():
            parts[name].extend(chunk)
    for part in parts.values():
        rng.shuffle(part)
    _check_nonempty(parts)
    return Split(parts["train"], parts["val"], parts["test"], stratified=len(strata) > 1)


def _strata(samples: Sequence[Sample]) -> list[list[Sample]]:
    groups: dict[str | None, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.reference].append(s)
    labelled = None not in groups and len(groups) <= MAX_STRATA
    if labelled and all(len(g) >= 3 for g in groups.values()):
        return [groups[k] for k in sorted(groups, key=str)]
    return [list(samples)]


def _cut(group: list[Sample], config: SplitConfig) -> dict[str, list[Sample]]:
    n = len(group)
    n_train = round(n * config.train)
    n_val = round(n * config.val)
    return {
        "train": group[:n_train],
        "val": group[n_train : n_train + n_val],
        "test": group[n_train + n_val :],
    }


def _check_nonempty(parts: dict[str, list[Sample]]) -> None:
    for name, part in parts.items():
        if not part:
            raise UserInputError(
                f"The {name} split is empty", "add rows or change --split (e.g. 0.5,0.2,0.3)"
            )
