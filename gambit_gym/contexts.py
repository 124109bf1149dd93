"""Context factors: what the agent sees before it picks a prompt.

A context is one level of each discrete factor (mHealth default: location x
previous-day step bucket = 12 contexts), drawn i.i.d. uniformly each round.
Contexts are indexed ``0 .. n_contexts - 1`` in row-major order over the
factors; the observation is the concatenation of one one-hot vector per factor.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: The file of the default domain, whose ``[[contexts]]`` are the default factors. Read here with ``tomllib``
#: (only the factors' names and levels): :mod:`gambit_gym.domains` itself builds on this module.
MHEALTH_DOMAIN_FILE = Path(__file__).resolve().with_name("domains") / "mhealth.toml"


def _domain_factors(path: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``(name, levels)`` of each ``[[contexts]]`` table of a domain file (checked in full by
    :func:`gambit_gym.domains.load_domain`)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return tuple((str(f["name"]), tuple(str(level) for level in f["levels"])) for f in data.get("contexts", []))


#: The mHealth domain's factors (location x previous-day step bucket), from :data:`MHEALTH_DOMAIN_FILE`.
MHEALTH_FACTORS: tuple[tuple[str, tuple[str, ...]], ...] = _domain_factors(MHEALTH_DOMAIN_FILE)


@dataclass(frozen=True)
class ContextSpace:
    """A product of discrete context factors with one-hot encoding.

    Example:
        >>> space = ContextSpace()
        >>> space.n_contexts, space.feature_dim
        (12, 7)
        >>> space.describe(5)
        {'location': 'work', 'previous_day_steps': '5,000-9,999'}
        >>> int(space.index(space.features[5]))
        5
    """

    factors: tuple[tuple[str, tuple[str, ...]], ...] = MHEALTH_FACTORS
    levels: np.ndarray = field(init=False, repr=False, compare=False)
    features: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.factors:
            raise ValueError("context factors: need at least one factor, got none")
        for name, levels in self.factors:
            if len(levels) < 1:
                raise ValueError(f"context factor {name!r}: needs at least one level")
        sizes = [len(levels) for _, levels in self.factors]
        # levels[c, j] = level index of factor j in context c (row-major order).
        grids = np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")
        levels = np.stack([g.ravel() for g in grids], axis=1)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        features = np.zeros((levels.shape[0], sum(sizes)), dtype=np.float32)
        rows = np.arange(levels.shape[0])[:, None]
        features[rows, levels + offsets] = 1.0
        levels.setflags(write=False)
        features.setflags(write=False)
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "_sizes", np.asarray(sizes))
        object.__setattr__(self, "_offsets", offsets)
        object.__setattr__(self, "_strides", np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]))
        # index() as two matrix products: which factor each feature belongs to, and what each feature adds
        membership = np.zeros((sum(sizes), len(sizes)))
        codes = np.zeros(sum(sizes))
        for j, size in enumerate(sizes):
            membership[offsets[j] : offsets[j] + size, j] = 1.0
            codes[offsets[j] : offsets[j] + size] = np.arange(size) * self._strides[j]
        object.__setattr__(self, "_membership", membership)
        object.__setattr__(self, "_codes", codes)
        object.__setattr__(
            self, "_names", [np.array(levels_, dtype=object) for _, levels_ in self.factors]
        )
        described = tuple(
            {name: lv_names[lv[j]] for j, (name, lv_names) in enumerate(self.factors)} for lv in levels
        )
        object.__setattr__(self, "_described", described)

    @classmethod
    def from_factors(cls, factors: Sequence[tuple[str, Sequence[str]]]) -> ContextSpace:
        """Build from ``[(name, [level, ...]), ...]``."""
        return cls(tuple((str(n), tuple(str(v) for v in lv)) for n, lv in factors))

    @property
    def n_contexts(self) -> int:
        return int(self.levels.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def factor_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.factors)

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray | int:
        """Uniform i.i.d. context indices."""
        return rng.integers(self.n_contexts, size=size)

    def index(self, observation: np.ndarray) -> np.ndarray:
        """Context index of one observation ``(feature_dim,)`` or a batch ``(n, feature_dim)``.

        Raises ``ValueError`` if an observation is not a valid one-hot encoding.
        """
        obs = np.asarray(observation)
        if obs.shape[-1:] != (self.feature_dim,) or obs.ndim not in (1, 2):
            raise ValueError(
                f"observation: expected shape ({self.feature_dim},) or (n, {self.feature_dim}), "
                f"got {obs.shape}"
            )
        x = obs.astype(np.float64, copy=False)
        if not (np.all((x == 0) | (x == 1)) and np.all(x @ self._membership == 1)):
            for j, (name, _) in enumerate(self.factors):  # name the first factor that is not one-hot
                block = x[..., self._offsets[j] : self._offsets[j] + self._sizes[j]]
                if not np.all((block == 0) | (block == 1)) or not np.all(block.sum(-1) == 1):
                    raise ValueError(f"observation: factor {name!r} is not one-hot encoded in {obs.tolist()}")
        # one-hot blocks: the product adds exactly one small integer code per factor
        return (x @ self._codes).astype(np.int64)

    def describe(self, context: int | np.ndarray) -> dict:
        """Readable form: ``{factor: level}`` (arrays of levels for an array of indices)."""
        if isinstance(context, (int, np.integer)) or np.ndim(context) == 0:
            return dict(self._described[int(context)])
        lv = self.levels[context]
        return {name: self._names[j][lv[..., j]] for j, (name, _) in enumerate(self.factors)}
