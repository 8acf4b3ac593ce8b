"""A/B experiments: configuration, deterministic visitor bucketing and stable bucket allocation.

The assignment scheme
---------------------
1. **Hash.** A visitor id is mapped to one of ``N_BUCKETS = 10_000`` buckets by

   ``bucket = int.from_bytes(sha256(salt_utf8 + b"\\x00" + visitor_utf8)[:8], "big") % 10_000``

   The salt is per experiment, so two experiments split the same visitors independently.
   (The modulo bias of 2**64 mod 10,000 is below 1e-15 and irrelevant.) The golden vectors in
   ``tests/service/test_experiments.py`` freeze this function: changing it would silently move
   every visitor and must never happen within one experiment.

2. **Allocation.** Each bucket is owned by one variant. The owner table is *not* recomputed from
   the weights alone; it is derived from the previous allocation of the same experiment (name and
   salt), which the event store keeps as a versioned ledger (see
   :meth:`prodfusion.service.events.EventStore.latest_allocation`). A new allocation is made only
   when the configured bucket counts change, by :func:`rebalance`:

   * target bucket counts are the weights scaled to 10,000 (largest-remainder rounding, ties to the
     variant listed first);
   * a variant that keeps its count keeps *exactly* its buckets; a variant that grows keeps all of
     its buckets and takes the lowest-numbered free ones; a variant that shrinks keeps its
     lowest-numbered buckets and releases the highest ones; a removed variant releases all.

   Hence changing weights never moves a visitor of a variant that keeps its share (nor of a
   variant that grows); only the released buckets of shrinking or removed variants change owner.
   A stateless rule cannot promise this with three or more variants (trading share between two
   of them would have to move the third), which is why the ledger exists. The very first
   allocation gives each variant one contiguous range, in the configured order.

3. **Re-randomising.** Change the salt (a new ledger starts; everybody is re-drawn) or, better,
   the experiment name (its events are then reported separately).

Examples
--------
>>> bucket_of("visitor-1", "demo-salt")
4790
>>> alloc = Allocation.initial("demo", "demo-salt", ["a", "b"], [1, 1])
>>> alloc.counts()
{'a': 5000, 'b': 5000}
>>> alloc.variant_of("visitor-1")
'a'
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prodfusion._checks import FUSION_METHODS, check_real
from prodfusion.data.storage import path_or_uri
from prodfusion.encoders.base import MODALITIES
from prodfusion.errors import ParameterError, param_error

__all__ = [
    "N_BUCKETS",
    "NAME_PATTERN",
    "bucket_of",
    "target_counts",
    "rebalance",
    "Allocation",
    "VariantConfig",
    "ExperimentConfig",
]

N_BUCKETS = 10_000
#: Experiment and variant names: short, URL- and label-safe.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)


def _check_name(value: object, name: str, where: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise param_error(
            name, where, "1-64 characters of letters, digits, '_', '.', '-' (starting with a "
            "letter or digit)", value,
        )
    return value


def bucket_of(visitor: str, salt: str) -> int:
    """The bucket in ``[0, 10_000)`` of ``visitor`` under ``salt`` (salted SHA-256).

    Examples
    --------
    >>> bucket_of("visitor-1", "demo-salt"), bucket_of("visitor-2", "demo-salt")
    (4790, 1596)
    """
    if not isinstance(visitor, str) or not visitor or "\x00" in visitor:
        raise param_error("visitor", "bucket_of()", "a non-empty string without NUL", visitor)
    if not isinstance(salt, str) or "\x00" in salt:
        raise param_error("salt", "bucket_of()", "a string without NUL", salt)
    digest = hashlib.sha256(salt.encode("utf-8") + b"\x00" + visitor.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % N_BUCKETS


def target_counts(weights: Sequence[float]) -> list[int]:
    """Bucket counts for ``weights`` (any positive scale), summing to 10,000.

    Largest-remainder rounding; equal remainders go to the variant listed first.

    Examples
    --------
    >>> target_counts([1, 1, 1])
    [3334, 3333, 3333]
    >>> target_counts([90, 10, 0])
    [9000, 1000, 0]
    """
    w = [float(x) for x in weights]
    if not w or any(not math.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
        raise param_error(
            "weights", "target_counts()", "non-negative finite numbers with a positive sum", weights
        )
    total = sum(w)
    exact = [x / total * N_BUCKETS for x in w]
    counts = [int(math.floor(e)) for e in exact]
    short = N_BUCKETS - sum(counts)
    order = sorted(range(len(w)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:short]:
        counts[i] += 1
    return counts


def rebalance(
    previous_owner: np.ndarray | None,
    previous_names: Sequence[str],
    names: Sequence[str],
    counts: Sequence[int],
) -> np.ndarray:
    """New bucket owner table (index into ``names`` per bucket) from the previous one.

    See the module docstring for the rules. ``previous_owner`` holds indices into
    ``previous_names`` (or is None for a first allocation).
    """
    if len(names) != len(counts) or sum(counts) != N_BUCKETS:
        raise ParameterError("rebalance(): counts must match names and sum to 10,000.")
    owner = np.full(N_BUCKETS, -1, dtype=np.int16)
    if previous_owner is not None:
        prev_index = {n: i for i, n in enumerate(previous_names)}
        for j, (name, target) in enumerate(zip(names, counts, strict=True)):
            if name not in prev_index:
                continue
            mine = np.flatnonzero(previous_owner == prev_index[name])  # ascending
            owner[mine[:target]] = j
    free = np.flatnonzero(owner < 0)  # ascending
    pos = 0
    for j, target in enumerate(counts):
        deficit = target - int((owner == j).sum())
        if deficit > 0:
            owner[free[pos : pos + deficit]] = j
            pos += deficit
    assert (owner >= 0).all()
    return owner


@dataclass(frozen=True)
class Allocation:
    """One version of an experiment's bucket-to-variant table.

    Attributes
    ----------
    experiment, salt : str
    version : int
        1 for the first allocation, +1 at every change of bucket counts.
    names : tuple of str
        Variants, in configured order.
    weights : tuple of float
        Configured weights when this version was made (as given).
    owner : ndarray of int16, shape (10_000,)
        Index into ``names`` of each bucket's variant.
    created_at : float
        Unix time this version took effect.
    """

    experiment: str
    salt: str
    version: int
    names: tuple[str, ...]
    weights: tuple[float, ...]
    owner: np.ndarray = field(repr=False)
    created_at: float = 0.0

    @classmethod
    def initial(
        cls, experiment: str, salt: str, names: Sequence[str], weights: Sequence[float]
    ) -> Allocation:
        """First allocation: contiguous ranges in the given order."""
        owner = rebalance(None, (), list(names), target_counts(weights))
        return cls(experiment, salt, 1, tuple(names), tuple(float(w) for w in weights), owner,
                   time.time())

    def evolve(self, names: Sequence[str], weights: Sequence[float]) -> Allocation:
        """The allocation for new names/weights: ``self`` when counts are unchanged, else the
        next version made by :func:`rebalance`."""
        counts = target_counts(weights)
        if tuple(names) == self.names and counts == [self.counts()[n] for n in names]:
            return self
        owner = rebalance(self.owner, self.names, list(names), counts)
        return Allocation(self.experiment, self.salt, self.version + 1, tuple(names),
                          tuple(float(w) for w in weights), owner, time.time())

    def counts(self) -> dict[str, int]:
        """Buckets per variant."""
        c = np.bincount(self.owner, minlength=len(self.names))
        return {n: int(c[i]) for i, n in enumerate(self.names)}

    def shares(self) -> dict[str, float]:
        """Traffic share per variant (bucket count / 10,000): what SRM checks against."""
        return {n: c / N_BUCKETS for n, c in self.counts().items()}

    def variant_of(self, visitor: str) -> str:
        """The variant of ``visitor`` (deterministic)."""
        return self.names[int(self.owner[bucket_of(visitor, self.salt)])]

    # ---- (de)serialisation as run-length ranges, for the ledger
    def ranges(self) -> dict[str, list[list[int]]]:
        """``{variant: [[start, stop), …]}`` half-open bucket ranges, ascending."""
        out: dict[str, list[list[int]]] = {n: [] for n in self.names}
        change = np.flatnonzero(np.diff(self.owner)) + 1
        starts = np.concatenate([[0], change])
        stops = np.concatenate([change, [N_BUCKETS]])
        for a, b in zip(starts, stops, strict=True):
            out[self.names[int(self.owner[a])]].append([int(a), int(b)])
        return out

    @staticmethod
    def owner_from_ranges(names: Sequence[str], ranges: Mapping[str, Sequence[Sequence[int]]]) -> np.ndarray:
        owner = np.full(N_BUCKETS, -1, dtype=np.int16)
        for j, n in enumerate(names):
            for a, b in ranges.get(n, []):
                if not 0 <= a < b <= N_BUCKETS or (owner[a:b] >= 0).any():
                    raise ParameterError(f"Allocation ranges of {n!r} overlap or leave [0, 10000).")
                owner[a:b] = j
        if (owner < 0).any():
            raise ParameterError("Allocation ranges do not cover all 10,000 buckets.")
        return owner


@dataclass(frozen=True)
class VariantConfig:
    """One arm of an experiment.

    Parameters
    ----------
    name : str
        Label used in responses, events, metrics and reports.
    weight : float
        Traffic weight (any non-negative scale; 0 pauses the arm).
    model : Path or str
        Model folder (or a symlink to one, for atomic publishing), or a folder in a bucket
        (``"s3://shop-data/models/shop"``: its URI; each new upload is picked up).
    fusion : {"early", "intermediate", "late"} or None
        None: the model's default.
    modalities : tuple of str or None
        None: the model's default.
    lists : Path, str or None
        Precomputed lists file (``prodfusion export``; or an ``s3://`` object) answered from
        first; live search for what it lacks (:mod:`prodfusion.service.lists`).
    fallback : tuple of str or None
        Modalities (intermediate fusion) that fill a list the primary fusion cannot fill,
        e.g. the paper's baseline: ``modalities=("clicks",), fallback=("text",)``
        (:class:`prodfusion.variants.Variant`; what ``evaluate replay`` replays).
    profile : str or None
        One of the model's weighting profiles (``prodfusion tune --profile NAME``) to rank
        by; fusion then defaults to intermediate. None: the model's default weighting.
    paper : bool
        Rank by the paper's formulas (equal weights, raw cosines, no click confidence)
        whatever weighting the model was tuned to, as the offline ``baseline`` does
        (:data:`prodfusion.variants.BASELINE`): with ``modalities=("clicks",)`` and
        ``fallback=("text",)`` the paper's baseline. Not with ``profile``, nor with
        ``lists`` (``prodfusion export`` ranks by the model's weighting): searched live.
    """

    name: str
    weight: float
    model: Path | str
    fusion: str | None = None
    modalities: tuple[str, ...] | None = None
    lists: Path | str | None = None
    fallback: tuple[str, ...] | None = None
    profile: str | None = None
    paper: bool = False

    def __post_init__(self) -> None:
        where = f"variant {self.name!r}"
        if not isinstance(self.paper, bool):
            raise param_error("paper", where, "true or false", self.paper)
        if self.paper and self.profile is not None:
            raise ParameterError(
                f"{where}: 'paper' ranks by the paper's equal raw weights and 'profile' by a "
                "tuned weighting; give one of them.")
        if self.paper and self.lists is not None:
            raise ParameterError(
                f"{where}: a 'paper' arm is searched live ('prodfusion export' ranks lists by "
                "the model's weighting, not the paper's); remove 'lists'.")
        _check_name(self.name, "name", "a variant")
        check_real(self.weight, "weight", where, low=0, expected="a non-negative number")
        if self.fusion is not None and self.fusion not in FUSION_METHODS:
            raise param_error("fusion", where, "one of 'early', 'intermediate', 'late'", self.fusion)
        if self.modalities is not None:
            mods = tuple(self.modalities)
            if not mods or any(m not in MODALITIES for m in mods) \
                    or len(set(mods)) != len(mods):
                raise param_error(
                    "modalities", where,
                    "a non-empty list of distinct " + ", ".join(repr(m) for m in MODALITIES),
                    list(self.modalities),
                )
            object.__setattr__(self, "modalities", mods)
        if self.profile is not None:
            from prodfusion.fusion.weighting import check_profile_name

            check_profile_name(self.profile, where)
        if self.fallback is not None:
            object.__setattr__(self, "fallback", tuple(self.fallback))
            self.variant(self.fusion or "intermediate", self.modalities or ("text",))  # checks
        model = path_or_uri(self.model) if isinstance(self.model, str) else Path(self.model)
        # a folder in a bucket kept as its URI, one spelling (no trailing /)
        object.__setattr__(self, "model", model.rstrip("/") if isinstance(model, str) else model)
        if self.lists is not None:
            object.__setattr__(self, "lists", path_or_uri(self.lists))


    def resolve(self, rec) -> tuple[str, tuple[str, ...]]:
        """The fusion and modalities this arm serves on model ``rec``: its own, else the
        model's as ``similar`` resolves them (a profile means intermediate fusion; early and
        late leave out the pairwise ``cooc`` …). Live search and lists files agree on them."""
        return rec.resolve(rec.fusion_for(self.fusion, self.profile), self.modalities or None)

    def variant(self, fusion: str, modalities):
        """The :class:`~prodfusion.variants.Variant` this arm serves, given the model's
        default ``fusion`` and ``modalities`` for what the arm leaves unset."""
        from prodfusion.variants import Variant

        return Variant(self.fusion or ("intermediate" if self.profile else fusion),
                       tuple(self.modalities or modalities),
                       fallback=self.fallback, name=self.name, profile=self.profile,
                       paper=self.paper)


@dataclass(frozen=True)
class ExperimentConfig:
    """An experiment: a name, a salt and weighted variants.

    Parameters
    ----------
    name : str
        Events and reports are keyed by it.
    salt : str
        Hash salt; defaults to ``name``.
    variants : tuple of VariantConfig
        At least one; the weights must not all be zero.
    control : str or None
        The variant others are compared with in reports (default: the first).

    Examples
    --------
    >>> exp = ExperimentConfig("demo", variants=(VariantConfig("a", 1, "m"),
    ...                                         VariantConfig("b", 1, "m", fusion="late")))
    >>> exp.control, exp.salt
    ('a', 'demo')
    """

    name: str
    variants: tuple[VariantConfig, ...]
    salt: str | None = None
    control: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.name, "name", "an experiment")
        if self.salt is None:
            object.__setattr__(self, "salt", self.name)
        if not isinstance(self.salt, str) or "\x00" in self.salt:
            raise param_error("salt", f"experiment {self.name!r}", "a string without NUL", self.salt)
        variants = tuple(self.variants)
        if not variants:
            raise ParameterError(f"Experiment {self.name!r} has no variants; configure at least one.")
        names = [v.name for v in variants]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ParameterError(f"Experiment {self.name!r}: duplicate variant names {sorted(dup)}.")
        if sum(v.weight for v in variants) <= 0:
            raise ParameterError(f"Experiment {self.name!r}: all variant weights are 0.")
        object.__setattr__(self, "variants", variants)
        if self.control is None:
            object.__setattr__(self, "control", names[0])
        elif self.control not in names:
            raise param_error("control", f"experiment {self.name!r}", f"one of {names}", self.control)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    @property
    def weights(self) -> list[float]:
        return [float(v.weight) for v in self.variants]

    def variant(self, name: str) -> VariantConfig:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)
