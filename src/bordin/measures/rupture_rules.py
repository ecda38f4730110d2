"""The rupture rule of a measure and its threshold: ``fixed``, ``reliable`` or ``ceiling``.

A fixed threshold of 1.5 points flags 45% of clients whose alliance never truly changes when
their scores vary with a within-client SD of 0.6, and 83% at 0.9, and calls most of those
"ruptures" repaired: regression to the mean (:mod:`bordin.measures.rupture_noise`). Gumz et al.
(2012) argued that a rupture criterion should follow how much a measure's scores vary. Bordin
therefore offers three rules per measure (the instrument definition's ``rupture_rule``,
``bordin analyze --rupture-rule``, or the clinic's measure plan in the web app):

* ``fixed``: a drop of at least the measure's ``rupture_threshold`` (1.5 points for the alliance
  check-in), repaired when the score is back to the level before the drop or rises by the
  threshold (:mod:`bordin.measures.ruptures`). The rule of earlier Bordin versions.
* ``reliable`` (**the default**): the threshold is a reliable-change threshold (Jacobson &
  Truax 1991), ``T = 1.96 * sqrt(2) * SE``, and a repair must exceed the rebound that
  regression to the mean predicts (Barnett, van der Pols & Dobson 2005), by ``T``.
  ``SE`` comes, in order, from

  1. the data, when they hold at least :data:`MIN_CLIENTS` clients with at least
     :data:`MIN_SCORES` scores each: ``SE`` = the pooled within-client SD, i.e. the
     data-derived threshold in the spirit of Gumz et al. (2012)
     (:func:`bordin.measures.ruptures.gumz_threshold`); used by the web app on the clinic's
     own data;
  2. the measure's facts, ``SE = rupture_sd * sqrt(1 - rupture_reliability)`` (for Bordin's
     alliance check-in: provisional values, ``T = 2.0``; see docs/measures.md);
  3. otherwise the measure's ``rupture_threshold`` as given.

  The correlation ``rho`` of the repair criterion is ``rupture_reliability`` (0 when the measure
  has none: the whole drop is then expected back, the strictest reading).
* ``ceiling``: the ``reliable`` threshold scaled to each client's own variability once they
  have four scores (:mod:`bordin.measures.ceiling_ruptures`); the typical within-client SD it is
  compared with is the ``SE`` above. An option, not the default, until data favour it.

``bordin analyze`` uses the measure's facts (2, 3), never the data, so that every partition
of a large data set is judged by the same threshold.

Sources
-------
* Safran, J. D., & Muran, J. C. (2000). *Negotiating the therapeutic alliance: A relational
  treatment guide*. Guilford Press.
* Stiles, W. B., et al. (2004). Patterns of alliance development and the rupture-repair
  hypothesis: Are productive relationships U-shaped or V-shaped? *Journal of Counseling
  Psychology*, 51(1), 81-92.
* Gumz, A., Brähler, E., Geyer, M., & Erices, R. (2012). Crisis-repair sequences. *BMC Medical
  Research Methodology*, 12, 10.
* Jacobson, N. S., & Truax, P. (1991). Clinical significance. *Journal of Consulting and
  Clinical Psychology*, 59(1), 12-19.
* Barnett, A. G., van der Pols, J. C., & Dobson, A. J. (2005). Regression to the mean: what it
  is and how to deal with it. *International Journal of Epidemiology*, 34(1), 215-220.

>>> from bordin.measures.instruments import builtin_registry
>>> s = setting_for(builtin_registry()["alliance"])
>>> s.rule, round(s.threshold, 4), s.source, s.retest
('reliable', 1.9957, 'instrument', 0.64)
>>> setting_for(builtin_registry()["alliance"], rule="fixed")
RuleSetting(rule='fixed', threshold=1.5, source='fixed', retest=None, pooled_sd=None)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import polars as pl

from bordin.measures import ceiling_ruptures, ruptures
from bordin.measures.instruments import RUPTURE_RULES, Instrument
from bordin.measures.reliable_change import Z_95
from bordin.measures.rupture_noise import within_client_sd
from bordin.measures.series import SeriesMatrix

Rule = Literal["fixed", "reliable", "ceiling"]
Source = Literal["fixed", "data", "instrument", "given"]
RULES: tuple[Rule, ...] = cast(tuple[Rule, ...], RUPTURE_RULES)
DEFAULT_RULE: Rule = "reliable"
#: The data-derived threshold needs this many clients with :data:`MIN_SCORES` scores each
#: (30 clients x 3 scores give at least 60 degrees of freedom for the within-client SD, whose
#: relative standard error is then about 1/sqrt(2 df) = 9%).
MIN_CLIENTS = 30
MIN_SCORES = 3


@dataclass(frozen=True)
class RuleSetting:
    """The rule in force for one measure, its threshold and where that came from.

    ``retest``: ``None`` for the fixed rule's repair criterion, else ``rho`` of the repair
    criterion beyond regression to the mean. ``pooled_sd``: the typical within-client SD the
    ceiling rule compares each client's own SD with (``None``: pooled from the data analysed).
    """

    rule: Rule
    threshold: float
    source: Source
    retest: float | None
    pooled_sd: float | None

    def describe(self) -> str:
        """One line for reports: which rule, which threshold, from what."""
        origin = {
            "fixed": "the measure's fixed threshold",
            "data": "the data (1.96·√2·within-client SD, Gumz et al. 2012)",
            "instrument": "the measure's reliability and SD (Jacobson & Truax 1991)",
            "given": "the threshold given for the measure",
        }[self.source]
        repair = (
            "repair: back to the earlier level or a rise of the threshold"
            if self.retest is None
            else f"repair: a rise beyond regression to the mean (ρ = {self.retest:g}) by the "
            "threshold"
        )
        return f"rule '{self.rule}', threshold {self.threshold:.2f} from {origin}; {repair}"


def enough_data(matrix: SeriesMatrix) -> bool:
    """Whether ``matrix`` holds :data:`MIN_CLIENTS` clients with :data:`MIN_SCORES` scores."""
    n_i = (~np.isnan(matrix.values)).sum(axis=1)
    return int((n_i >= MIN_SCORES).sum()) >= MIN_CLIENTS


def instrument_se(inst: Instrument) -> float | None:
    """``rupture_sd * sqrt(1 - rupture_reliability)`` (J&T's SE), ``None`` without both facts."""
    if inst.rupture_sd is None or inst.rupture_reliability is None:
        return None
    return inst.rupture_sd * math.sqrt(1.0 - inst.rupture_reliability)


def setting_for(
    inst: Instrument, *, rule: str | None = None, data: SeriesMatrix | None = None
) -> RuleSetting | None:
    """The rule in force for ``inst`` (its own ``rupture_rule`` unless ``rule`` is given).

    ``data``: scores to derive the threshold from when they are enough (:func:`enough_data`).
    ``None`` when the rule has no threshold to work with.
    """
    chosen = cast(Rule, rule or inst.rupture_rule)
    if chosen not in RULES:
        raise ValueError(f"rupture rule must be one of {', '.join(RULES)}, got {chosen!r}")
    if chosen == "fixed":
        if inst.rupture_threshold is None:
            return None
        return RuleSetting("fixed", inst.rupture_threshold, "fixed", None, None)
    retest = inst.rupture_reliability if inst.rupture_reliability is not None else 0.0
    if data is not None and enough_data(data):
        sd = within_client_sd(data)
        if math.isfinite(sd) and sd > 0:
            return RuleSetting(chosen, _reliable(sd), "data", retest, sd)
    se = instrument_se(inst)
    if se is not None and se > 0:
        return RuleSetting(chosen, _reliable(se), "instrument", retest, se)
    if inst.rupture_threshold is not None:
        return RuleSetting(chosen, inst.rupture_threshold, "given", retest, None)
    return None


def _reliable(se: float) -> float:
    """Jacobson & Truax (1991): ``1.96 * sqrt(2) * SE``."""
    return Z_95 * math.sqrt(2.0) * se


def detect(matrix: SeriesMatrix, setting: RuleSetting) -> pl.DataFrame:
    """Ruptures by ``setting``; the columns of :func:`bordin.measures.ruptures.detect`."""
    if setting.rule == "ceiling":
        return ceiling_ruptures.detect_scaled(
            matrix,
            threshold=setting.threshold,
            retest=setting.retest,
            pooled_sd=setting.pooled_sd,
        )
    return ruptures.detect(matrix, threshold=setting.threshold, retest=setting.retest)


def detect_scores(scores: Sequence[float | None], setting: RuleSetting) -> list[ruptures.Rupture]:
    """:func:`detect` on one client's series (``scores[k]`` is session ``k + 1``)."""
    return ruptures.as_list(detect(SeriesMatrix.from_scores(scores), setting))


def client_threshold(scores: Sequence[float | None], setting: RuleSetting) -> float:
    """The threshold this client's series is judged by (the ceiling rule scales it)."""
    if setting.rule != "ceiling":
        return setting.threshold
    matrix = SeriesMatrix.from_scores(scores)
    per_client = ceiling_ruptures.client_thresholds(
        matrix, threshold=setting.threshold, pooled_sd=setting.pooled_sd
    )
    return float(per_client[0]) if per_client.size else setting.threshold
