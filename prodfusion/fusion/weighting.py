"""The weighting of a fusion as one value: per-modality weights, calibration, the click
confidence constant ``n0``, the zero-weight fallback and the calibration statistics
(:class:`Weighting`), and the parsing of ``--weights`` (:func:`parse_weights`). What each
fusion computes from it is in :mod:`prodfusion.fusion.weights`, which re-exports these names.

Examples
--------
>>> parse_weights("text=1, image=0.5,clicks=2")
{'text': 1.0, 'image': 0.5, 'clicks': 2.0}
>>> Weighting.make({"text": 1, "image": 0}).w("image")
0.0
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from prodfusion.encoders.base import MODALITIES
from prodfusion.errors import ParameterError, param_error

__all__ = ["CALIBRATIONS", "Z_CALIBRATIONS", "FALLBACK_OFFSET", "Weighting", "parse_weights",
           "format_weights", "CONFIDENCE_FORMS", "parse_n0", "format_n0", "n0_entry",
           "DEFAULT_N0_GRID"]

CALIBRATIONS: tuple[str, ...] = ("none", "zscore", "zmean")
#: Subtracted from the fallback score (``Weighting.fallback``): below every weighted score.
FALLBACK_OFFSET = 1000.0
#: Calibrations that standardise cosines by the modality's similarity statistics.
Z_CALIBRATIONS: tuple[str, ...] = ("zscore", "zmean")
#: How the click confidence ``c(n)`` grows with a product's training occurrences ``n``
#: (:attr:`Weighting.confidence`): ``"ratio"``, ``n / (n + n0)``; ``"min"``, 1 from ``n0``
#: occurrences on and 0 below (a product seen fewer times has its clicks counted as absent).
CONFIDENCE_FORMS: tuple[str, ...] = ("ratio", "min")
#: The click-confidence entries a tuning tries by default (``n0_grid``; the CLI's ``--n0``):
#: none, ``c(n) = n/(n+2)``, ``n/(n+10)`` on the grid, then ``min:2`` and ``min:5`` at the
#: weights found (a query seen fewer than K times ranked without its clicks; kept only where
#: validation prefers it). ``min:K`` joined the default in the twenty-fourth session: under
#: ``zmean`` an untrained click vector otherwise filled a rarely seen product's list with
#: products that have no clicks at all (docs/results/README.md, twenty-third session).
DEFAULT_N0_GRID: tuple[float | str | None, ...] = (None, 2.0, 10.0, "min:2", "min:5")


def parse_n0(spec, where: str = "--n0") -> tuple[float | None, str]:
    """One click-confidence setting → ``(n0, form)``: ``None``/``"none"`` → ``(None,
    "ratio")``; a number → the ratio form; ``"min:K"`` → ``(K, "min")``.

    >>> parse_n0("none"), parse_n0(10), parse_n0("min:5")
    ((None, 'ratio'), (10.0, 'ratio'), (5.0, 'min'))
    """
    if spec is None or str(spec).strip().lower() == "none":
        return None, "ratio"
    text = str(spec).strip().lower()
    form, sep, value = text.partition(":")
    if not sep:
        form, value = "ratio", text
    try:
        n0 = float(value)
    except ValueError:
        n0 = float("nan")
    if form not in CONFIDENCE_FORMS or not math.isfinite(n0) or n0 <= 0:
        raise param_error("n0", where, "'none', a number > 0 (c(n) = n/(n+n0)) or 'min:K' "
                          "(clicks count only for products seen at least K times)", spec)
    return n0, form


def n0_entry(spec, where: str = "--n0") -> float | str | None:
    """One ``n0`` grid entry in its canonical, hashable form: None, a float (the ratio
    form) or ``"min:K"`` (:func:`parse_n0` checks it).

    >>> n0_entry("off".replace("off", "none")), n0_entry("2"), n0_entry("MIN:5.0")
    (None, 2.0, 'min:5')
    """
    value, form = parse_n0(spec, where)
    return value if value is None or form == "ratio" else format_n0(value, form)


def format_n0(n0: float | None, form: str = "ratio") -> str:
    """The inverse of :func:`parse_n0`: ``"None"``, ``"10.0"`` or ``"min:5"``.

    >>> format_n0(None), format_n0(10.0), format_n0(5.0, "min")
    ('None', '10.0', 'min:5')
    """
    if n0 is None:
        return "None"
    return f"min:{n0:g}" if form == "min" else str(float(n0))


def parse_weights(spec: str | Mapping[str, float] | None, where: str = "--weights",
                  allowed: Sequence[str] = MODALITIES) -> dict[str, float] | None:
    """``"text=1,image=0.5,clicks=2"`` or a mapping → ``{modality: weight}``.

    Refuses an unknown modality, a weight that is not a finite number ≥ 0, a modality named
    twice, and weights that are all zero, naming the option. ``None`` stays ``None``.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        items = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep:
                raise ParameterError(
                    f"{where}: {part!r} is not MODALITY=WEIGHT (e.g. 'text=1,image=0.5,clicks=2')."
                )
            try:
                items.append((name.strip(), float(value)))
            except ValueError:
                raise ParameterError(
                    f"{where}: the weight of {name.strip()!r} is {value.strip()!r}, not a number."
                ) from None
    elif isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        raise param_error("weights", where, "'MOD=W,MOD=W' or a mapping", spec)
    out: dict[str, float] = {}
    for name, value in items:
        if name not in allowed:
            raise ParameterError(
                f"{where}: unknown modality {name!r}; expected some of {list(allowed)}."
            )
        if name in out:
            raise ParameterError(f"{where}: modality {name!r} is given twice.")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ParameterError(f"{where}: the weight of {name!r} must be a number, got {value!r}.")
        v = float(value)
        if math.isnan(v) or math.isinf(v):
            raise ParameterError(f"{where}: the weight of {name!r} is {v}; weights must be finite.")
        if v < 0:
            raise ParameterError(f"{where}: the weight of {name!r} is {v}; weights must be ≥ 0.")
        out[name] = v
    if not out:
        raise ParameterError(f"{where}: no weight given.")
    if all(v == 0 for v in out.values()):
        raise ParameterError(f"{where}: every weight is 0; at least one modality must count.")
    return out


#: What a weighting profile may be named (``prodfusion tune MODEL --profile NAME``).
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_profile_name(name: object, where: str, option: str = "profile") -> str:
    """``name`` if it can name a weighting profile (letters, digits, ``_.-``, 64 at most,
    starting with a letter or digit), else a :class:`ParameterError` naming ``option``.

    >>> check_profile_name("baskets", "tune()")
    'baskets'
    """
    if not isinstance(name, str) or not PROFILE_NAME.fullmatch(name):
        raise param_error(option, where, "a name of letters, digits, '_', '.' or '-' (64 at "
                          "most, starting with a letter or digit)", name)
    return name


def format_weights(weights: Mapping[str, float]) -> str:
    """``"clicks=0.999, text=0.0005, image=0"``: three significant digits, so a tie-break
    weight (a thousandth of the others) does not print as 0.

    >>> format_weights({"clicks": 0.99889, "text": 0.00049945, "image": 0.0})
    'clicks=0.999, text=0.000499, image=0'
    """
    return ", ".join(f"{m}={x:.3g}" if x else f"{m}=0" for m, x in weights.items())


@dataclass(frozen=True)
class Weighting:
    """How modalities are weighed and calibrated (hashable: fusers are cached by it).

    Build it with :meth:`make`. ``weights`` lists ``(modality, w)``; a modality not listed
    has weight 1 when ``weights`` is None and 0 otherwise.
    """

    weights: tuple[tuple[str, float], ...] | None = None
    calibration: str = "none"
    stats: tuple[tuple[str, float, float], ...] = ()
    n0: float | None = None
    #: Intermediate fusion: rank pairs that share only zero-weight modalities after every
    #: other candidate instead of never (``-inf``). A weight of 0 then means "a last resort",
    #: not "never". ``True``: by their mean raw cosine over those modalities; a tuple of
    #: ``(modality, f)``: by the **fallback weights** ``f`` over z-scored similarities (what
    #: ``prodfusion tune`` learns for the cases the weighted modalities cannot serve;
    #: :func:`~prodfusion.fusion.weights.fallback_terms`).
    fallback: bool | tuple[tuple[str, float], ...] = False
    #: Under ``"zmean"``: a modality the query has and the candidate lacks counts as
    #: ``impute`` × the pair's weighted mean z-score over the modalities both have, instead of
    #: 0 (its mean). 0 is ``"zmean"`` (lacking a modality pulls a product towards a random
    #: one), 1 ranks as ``"zscore"`` (the others alone decide); in between, lacking a
    #: modality is neither a bonus nor the full penalty. ``prodfusion tune`` tries it when
    #: ``--calibrations`` lists ``zmean@β``.
    impute: float = 0.0
    #: Fallback weights' first tier: a modality the query has with a positive fallback weight
    #: and the candidate lacks is ``"drop"``-ped (``Σ f_m z_m / Σ f_m`` over the shared ones:
    #: what older folders mean, which favours a candidate lacking a modality whose z-scores
    #: run lower) or counts as ``"zero"``, a random product's similarity (the denominator is
    #: the query's own ``Σ f_m``, as ``"zmean"``): what ``prodfusion tune`` writes.
    fallback_missing: str = "drop"
    #: The form of the click confidence ``c(n)`` under ``n0`` (:data:`CONFIDENCE_FORMS`):
    #: ``"ratio"`` (older folders), or ``"min"``: the clicks of a *query* seen fewer than
    #: ``n0`` times in training count as absent; the candidates keep theirs (early fusion,
    #: which scales each product's block, applies it to both sides).
    confidence: str = "ratio"
    #: A :class:`~prodfusion.fusion.learned.LearnedScorer`: intermediate fusion scores pairs
    #: by its trees instead of the weighted mean (``tune --learner gbdt``); the weights above
    #: still gather the candidates of approximate indexes. ``None``: the linear formulas.
    learned: object = None

    @classmethod
    def make(cls, weights: Mapping[str, float] | str | None = None, calibration: str = "none",
             stats: Mapping[str, Sequence[float]] | None = None, n0: float | None = None,
             where: str = "Weighting",
             fallback: bool | Mapping[str, float] | tuple = False,
             impute: float = 0.0, fallback_missing: str = "drop",
             confidence: str = "ratio", learned=None) -> Weighting:
        if calibration not in CALIBRATIONS:
            raise param_error("calibration", where, f"one of {list(CALIBRATIONS)}", calibration)
        w = parse_weights(weights, where)
        if n0 is not None and (isinstance(n0, bool) or not isinstance(n0, (int, float))
                               or not math.isfinite(n0) or n0 <= 0):
            raise param_error("n0", where, "a finite number > 0 (or None)", n0)
        st = tuple(sorted((m, float(mu), float(sd)) for m, (mu, sd) in (stats or {}).items()))
        if isinstance(fallback, (Mapping, tuple, list)) and len(fallback):
            fb = tuple(sorted(parse_weights(dict(fallback), f"{where} fallback weights").items()))
        else:
            fb = bool(fallback)
        if isinstance(impute, bool) or not isinstance(impute, (int, float)) \
                or not 0 <= impute <= 1:
            raise param_error("impute", where, "a number in [0, 1]", impute)
        if fallback_missing not in ("drop", "zero"):
            raise param_error("fallback_missing", where, "'drop' or 'zero'", fallback_missing)
        if confidence not in CONFIDENCE_FORMS:
            raise param_error("confidence", where, f"one of {list(CONFIDENCE_FORMS)}",
                              confidence)
        if learned is not None:
            from prodfusion.fusion.learned import LearnedScorer

            if isinstance(learned, Mapping):
                learned = LearnedScorer.from_dict(learned)
            if not isinstance(learned, LearnedScorer):
                raise param_error("learned", where, "a LearnedScorer", learned)
            if w is None:
                raise ParameterError(f"{where}: a learned weighting keeps linear weights "
                                     "(its approximate indexes gather candidates by them).")
        return cls(tuple(sorted(w.items())) if w is not None else None, calibration, st,
                   None if n0 is None else float(n0), fb, float(impute), fallback_missing,
                   confidence, learned)

    @classmethod
    def from_dict(cls, d: Mapping | None) -> Weighting:
        """From :meth:`to_dict` (a manifest); ``None``/empty → the paper's formulas."""
        if not d:
            return cls()
        return cls.make(d.get("weights"), d.get("calibration", "none"), d.get("stats"),
                        d.get("n0"), where="manifest settings.weighting",
                        fallback=d.get("fallback") or False, impute=d.get("impute", 0.0),
                        fallback_missing=d.get("fallback_missing", "drop"),
                        confidence=d.get("confidence", "ratio"), learned=d.get("learned"))

    def to_dict(self) -> dict:
        out = {"weights": dict(self.weights) if self.weights is not None else None,
               "calibration": self.calibration,
               "stats": {m: [mu, sd] for m, mu, sd in self.stats}, "n0": self.n0}
        if self.fallback:  # absent: older folders, zero weights mean "never"
            out["fallback"] = True if self.fallback is True else dict(self.fallback)
        if self.impute:  # absent: 0, what "zmean" meant before
            out["impute"] = self.impute
        if self.fallback_missing != "drop":  # absent: older folders' fallback weights
            out["fallback_missing"] = self.fallback_missing
        if self.confidence != "ratio":  # absent: c(n) = n / (n + n0), as before
            out["confidence"] = self.confidence
        if self.learned is not None:  # absent: the linear formulas
            out["learned"] = self.learned.to_dict()
        return out

    def overridden(self, weights=None, calibration: str | None = None,
                   where: str = "similar()") -> Weighting:
        """This weighting with ``weights`` and/or ``calibration`` in place of its own (its
        ``n0``, fallback and ``impute`` kept; statistics estimated again on use). A learned
        weighting becomes linear: the weights asked for are what ranks."""
        return Weighting.make(weights if weights is not None else
                              (dict(self.weights) if self.weights is not None else None),
                              calibration or self.calibration, None, self.n0, where=where,
                              fallback=self.fallback, impute=self.impute,
                              fallback_missing=self.fallback_missing,
                              confidence=self.confidence)

    def fallback_weight(self, m: str) -> float | None:
        """``f_m`` of the fallback weights, or ``None`` under the plain fallback (``True``)."""
        if self.fallback is True or not self.fallback:
            return None
        return dict(self.fallback).get(m, 0.0)

    @property
    def is_default(self) -> bool:
        return self.weights is None and self.calibration == "none" and self.n0 is None

    def w(self, m: str) -> float:
        return 1.0 if self.weights is None else dict(self.weights).get(m, 0.0)

    def _stat(self, m: str) -> tuple[float, float]:
        for name, mu, sd in self.stats:
            if name == m:
                return mu, sd
        raise ParameterError(
            f"calibration={self.calibration!r} needs the similarity statistics of {m!r}; estimate them "
            "with estimate_stats() (Recommender does it on first use)."
        )

    def scale(self, m: str) -> float:
        """``a_m``: 1, or ``1/σ_m`` under ``zscore`` / ``zmean``."""
        return 1.0 if self.calibration == "none" else 1.0 / self._stat(m)[1]

    def shift(self, m: str) -> float:
        """``μ_m/σ_m`` under ``zscore`` / ``zmean`` (0 otherwise): ``s_m = a_m·cos_m − shift_m``."""
        if self.calibration == "none":
            return 0.0
        mu, sd = self._stat(m)
        return mu / sd

    def calibrate(self, m: str, cos: np.ndarray) -> np.ndarray:
        """The calibrated similarity ``s_m`` of raw cosines."""
        if self.calibration == "none":
            return cos
        return self._z(m, cos)

    def _z(self, m: str, cos: np.ndarray) -> np.ndarray:
        """``(cos − μ_m) / σ_m``, computed as ``a_m·cos − shift_m``."""
        mu, sd = self._stat(m)
        return cos * np.float32(1.0 / sd) - np.float32(mu / sd)

    def needs_stats(self, modalities: Sequence[str]) -> list[str]:
        """Modalities whose statistics this weighting needs and lacks: every one under a z
        calibration; those with a positive fallback weight (always z-scored) otherwise."""
        have = {m for m, _, _ in self.stats}
        return [m for m in modalities if m not in have and (
            self.calibration != "none" or (self.fallback_weight(m) or 0) > 0)]

    def fallback_calibrate(self, m: str, cos: np.ndarray) -> np.ndarray:
        """The fallback weights' similarity: the z-score of ``cos`` for modality ``m``,
        whatever the main calibration (the fallback mixes modalities, so it is calibrated)."""
        return self._z(m, cos)

    def with_stats(self, stats: Mapping[str, Sequence[float]]) -> Weighting:
        merged = {m: (mu, sd) for m, mu, sd in self.stats}
        merged.update({m: tuple(v) for m, v in stats.items()})
        return Weighting.make(dict(self.weights) if self.weights is not None else None,
                              self.calibration, merged, self.n0, fallback=self.fallback,
                              impute=self.impute, fallback_missing=self.fallback_missing,
                              confidence=self.confidence, learned=self.learned)

    def restrict(self, modalities: Sequence[str]) -> Weighting:
        """The same weighting over ``modalities`` only (weights of the others dropped).

        When every kept weight is 0 (e.g. asking a tuned model for the one modality tuning
        switched off) the kept modalities are weighed equally: the caller asked for them.
        A learned scorer is kept only over the modalities it was trained on (else the
        weighting is linear).
        """
        if self.weights is None:
            return self
        kept = tuple((m, w) for m, w in self.weights if m in modalities)
        learned = self.learned if self.learned is not None and \
            set(self.learned.modalities) == set(modalities) else None
        return Weighting(kept if any(w > 0 for _, w in kept) else None, self.calibration,
                         self.stats, self.n0, self.fallback, self.impute,
                         self.fallback_missing, self.confidence, learned)

    def check(self, modalities: Sequence[str], where: str) -> None:
        """Refuse weights naming a modality outside ``modalities`` or zero on all of them."""
        if self.weights is None:
            return
        extra = [m for m, _ in self.weights if m not in modalities]
        if extra:
            raise ParameterError(
                f"{where}: weights name {extra}, which this fusion does not have "
                f"(it fuses {list(modalities)})."
            )
        if all(self.w(m) == 0 for m in modalities):
            raise ParameterError(f"{where}: every fused modality has weight 0.")
