"""Clinical significance: Jacobson & Truax's cut-off criteria a, b and c.

Source: Jacobson, N. S., & Truax, P. (1991). Clinical significance: a statistical approach to
defining meaningful change in psychotherapy research. *Journal of Consulting and Clinical
Psychology*, 59(1), 12-19 (p. 13, the three cut-offs and which to prefer).

With the dysfunctional population's mean and SD ``M_d, S_d`` (Bordin uses the clients' own
intake scores, as Jacobson & Truax did with their pre-treatment sample) and the functional
population's ``M_f, S_f`` (``norm_mean``, ``norm_sd`` in the measures file), and ``sign = -1``
when lower scores are better (``+1`` otherwise):

* **a**: two SDs beyond the dysfunctional mean, towards functioning: ``M_d + sign * 2 S_d``;
* **b**: within two SDs of the functional mean: ``M_f - sign * 2 S_f``;
* **c**: the point between the means weighted by the SDs (equally likely to come from either
  population): ``(S_f M_d + S_d M_f) / (S_f + S_d)``.

Which one applies, following Jacobson & Truax's recommendation: without norms only **a** can be
computed; with norms, **c** is preferred when the two distributions overlap (the two ranges
``M +- 2 SD`` intersect) and **b** when they do not. The report states the criterion used.

A client's end score is *in the functional range* when it is on the functional side of the
cut-off. Categories combine this with reliable change (a change of at least the measure's
reliable-change threshold): ``recovered`` (reliable improvement, started on the dysfunctional
side, ended on the functional side), ``improved`` (reliable improvement otherwise),
``deteriorated`` (reliable change for the worse) and ``unchanged``.

>>> c = cutoffs(dys_mean=25.0, dys_sd=8.0, lower_is_better=True, norm_mean=7.0, norm_sd=5.0)
>>> (c.a, c.b, c.c, c.chosen)
(9.0, 17.0, 13.923, 'c')
>>> cutoffs(dys_mean=25.0, dys_sd=8.0, lower_is_better=True).chosen
'a'
>>> cutoffs(dys_mean=40.0, dys_sd=4.0, lower_is_better=True, norm_mean=10.0, norm_sd=3.0).chosen
'b'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bordin.measures.reliable_change import ROUND

Criterion = str
RULE = (
    "Jacobson & Truax (1991): c when norms exist and the functional and dysfunctional "
    "ranges (mean ± 2 SD) overlap, b when they do not, a when there are no norms"
)


@dataclass(frozen=True)
class Cutoffs:
    """The three cut-offs (``b``, ``c`` are ``None`` without norms) and the one chosen."""

    a: float
    b: float | None
    c: float | None
    chosen: Criterion
    value: float
    lower_is_better: bool
    why: str

    def to_dict(self) -> dict[str, object]:
        return {
            "a": self.a,
            "b": self.b,
            "c": self.c,
            "criterion": self.chosen,
            "cutoff": self.value,
            "why": self.why,
        }


def cutoffs(
    *,
    dys_mean: float,
    dys_sd: float,
    lower_is_better: bool,
    norm_mean: float | None = None,
    norm_sd: float | None = None,
    digits: int = 3,
) -> Cutoffs:
    """Compute criteria a, b, c and choose one as Jacobson & Truax recommend."""
    if not (math.isfinite(dys_sd) and dys_sd > 0):
        raise ValueError(f"the intake SD must be positive, got {dys_sd}")
    sign = -1.0 if lower_is_better else 1.0
    a = round(dys_mean + sign * 2 * dys_sd, digits)
    if norm_mean is None or norm_sd is None:
        return Cutoffs(a, None, None, "a", a, lower_is_better, "no norms given: criterion a")
    if not norm_sd > 0:
        raise ValueError(f"norm_sd must be positive, got {norm_sd}")
    b = round(norm_mean - sign * 2 * norm_sd, digits)
    c = round((norm_sd * dys_mean + dys_sd * norm_mean) / (norm_sd + dys_sd), digits)
    d_lo, d_hi = dys_mean - 2 * dys_sd, dys_mean + 2 * dys_sd
    f_lo, f_hi = norm_mean - 2 * norm_sd, norm_mean + 2 * norm_sd
    overlap = d_lo <= f_hi and f_lo <= d_hi
    if overlap:
        return Cutoffs(a, b, c, "c", c, lower_is_better, "the distributions overlap: criterion c")
    return Cutoffs(a, b, c, "b", b, lower_is_better, "the distributions do not overlap: b")


def functional(scores: npt.NDArray[np.float64], cut: Cutoffs) -> npt.NDArray[np.bool_]:
    """Whether each score is on the functional side of the chosen cut-off."""
    if cut.lower_is_better:
        return np.asarray(scores < cut.value)
    return np.asarray(scores > cut.value)


def categories(
    before: npt.NDArray[np.float64],
    after: npt.NDArray[np.float64],
    *,
    threshold: float,
    cut: Cutoffs,
) -> npt.NDArray[np.str_]:
    """Jacobson & Truax category of each client (see the module docstring)."""
    gain = np.round(before - after if cut.lower_is_better else after - before, ROUND)
    improved = gain >= threshold
    worse = gain <= -threshold
    out = np.full(before.shape, "unchanged", dtype="<U12")
    out[improved] = "improved"
    out[worse] = "deteriorated"
    out[improved & ~functional(before, cut) & functional(after, cut)] = "recovered"
    return out
