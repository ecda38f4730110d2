"""Reliable change and clinical significance (Jacobson & Truax, 1991).

Source: Jacobson, N. S., & Truax, P. (1991). Clinical significance: a statistical approach to
defining meaningful change in psychotherapy research. *Journal of Consulting and Clinical
Psychology*, 59(1), 12-19.

* standard error of measurement ``SE = SD * sqrt(1 - r)``
* standard error of the difference ``S_diff = sqrt(2) * SE``
* reliable change index ``RCI = (x2 - x1) / S_diff``; the change is reliable when
  ``|RCI| > 1.96``, i.e. when ``|x2 - x1| > 1.96 * S_diff`` (the *reliable-change threshold*).

When a measure's threshold is given directly (PHQ-9: 6 points, GAD-7: 4 points, as used by NHS
Talking Therapies), ``S_diff`` is recovered as ``threshold / 1.96`` so that the RCI and the
threshold agree. Bordin follows the NHS Talking Therapies convention for those published
thresholds: a change *of at least* the threshold counts as reliable.

Categories, per client and measure, comparing the first and the last available score:

* ``recovered``: reliable improvement, a case at the first score and not a case at the last
  (needs a caseness cut-off; Jacobson & Truax's criterion for clinically significant change);
* ``improved``: reliable improvement otherwise;
* ``deteriorated``: reliable change in the worse direction;
* ``unchanged``: neither.

>>> round(jacobson_truax_threshold(sd=7.5, reliability=0.88), 2)
7.2
>>> classify_change(20.0, 8.0, threshold=6.0, lower_is_better=True, caseness=10.0)
'recovered'
>>> classify_change(20.0, 15.0, threshold=6.0, lower_is_better=True, caseness=10.0)
'unchanged'
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import polars as pl

from bordin.measures.series import SeriesMatrix

Z_95 = 1.96
#: Differences are rounded to this many decimals before comparison with a threshold, so that
#: floating-point noise (20.1 - 14.1 = 6.000000000000002) never decides a category.
ROUND = 9


def standard_error(sd: float, reliability: float) -> float:
    """Standard error of measurement, ``SD * sqrt(1 - r)`` (Jacobson & Truax 1991, eq. 2)."""
    if not 0 <= reliability < 1:
        raise ValueError(f"reliability must be in [0, 1), got {reliability}")
    if sd <= 0:
        raise ValueError(f"sd must be positive, got {sd}")
    return sd * math.sqrt(1 - reliability)


def s_diff(sd: float, reliability: float) -> float:
    """Standard error of the difference, ``sqrt(2) * SE``."""
    return math.sqrt(2) * standard_error(sd, reliability)


def jacobson_truax_threshold(sd: float, reliability: float) -> float:
    """Smallest reliable change, ``1.96 * sqrt(2) * SD * sqrt(1 - r)``."""
    return Z_95 * s_diff(sd, reliability)


def rci(before: float, after: float, threshold: float) -> float:
    """Reliable change index ``(after - before) / S_diff`` with ``S_diff = threshold / 1.96``."""
    return (after - before) / (threshold / Z_95)


def classify_change(
    before: float,
    after: float,
    *,
    threshold: float,
    lower_is_better: bool,
    caseness: float | None = None,
) -> str:
    """Category of one client's change from ``before`` to ``after`` (see module docstring)."""
    return str(
        classify_arrays(
            np.array([before]),
            np.array([after]),
            threshold=threshold,
            lower_is_better=lower_is_better,
            caseness=caseness,
        )[0]
    )


def classify_arrays(
    before: npt.NDArray[np.float64],
    after: npt.NDArray[np.float64],
    *,
    threshold: float,
    lower_is_better: bool,
    caseness: float | None = None,
) -> npt.NDArray[np.str_]:
    """Vectorised :func:`classify_change` over many clients."""
    codes = _category_codes(
        before, after, threshold=threshold, lower_is_better=lower_is_better, caseness=caseness
    )
    return np.array(CATEGORIES, dtype="<U12")[codes]


#: The categories :func:`classify_arrays` gives, in the order of :func:`_category_codes`.
CATEGORIES = ("unchanged", "improved", "deteriorated", "recovered")


def _category_codes(
    before: npt.NDArray[np.float64],
    after: npt.NDArray[np.float64],
    *,
    threshold: float,
    lower_is_better: bool,
    caseness: float | None,
) -> npt.NDArray[np.int8]:
    """Each client's category as its index in :data:`CATEGORIES`."""
    improvement = np.round(before - after if lower_is_better else after - before, ROUND)
    improved = improvement >= threshold
    out = np.zeros(before.shape, dtype=np.int8)
    out[improved] = 1
    out[improvement <= -threshold] = 2
    if caseness is not None:
        case_before = before >= caseness if lower_is_better else before <= caseness
        case_after = after >= caseness if lower_is_better else after <= caseness
        out[improved & case_before & ~case_after] = 3
    return out


def change_table(
    matrix: SeriesMatrix,
    *,
    threshold: float,
    lower_is_better: bool,
    caseness: float | None = None,
) -> pl.DataFrame:
    """First-versus-last change for every client with at least two scores.

    Columns: ``client_id, first_session, last_session, baseline, final, change, rci,
    category``. ``change`` is ``final - baseline`` (its sign is the raw direction; the
    category says whether that is better or worse).
    """
    first, last = matrix.first_last()
    keep = (first >= 0) & (last > first)
    rows = np.flatnonzero(keep)
    baseline = matrix.values[rows, first[rows]]
    final = matrix.values[rows, last[rows]]
    change = np.round(final - baseline, ROUND)
    return pl.DataFrame(
        {
            "client_id": matrix.client_ids.gather(rows),
            "first_session": first[rows] + 1,
            "last_session": last[rows] + 1,
            "baseline": baseline,
            "final": final,
            "change": change,
            "rci": np.round(change / (threshold / Z_95), 3),
            "category": pl.Series(CATEGORIES, dtype=pl.String).gather(
                _category_codes(
                    baseline,
                    final,
                    threshold=threshold,
                    lower_is_better=lower_is_better,
                    caseness=caseness,
                )
            ),
        }
    )
