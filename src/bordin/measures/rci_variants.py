"""Reliable change index variants: Jacobson-Truax, Edwards-Nunnally, Hageman-Arrindell.

All three need the measure's reliability ``r`` (``reliability`` in the measures file) and the
pre-treatment SD; they differ in how they treat regression to the mean.

* **Jacobson & Truax (1991)**, *J Consult Clin Psychol* 59(1), 12-19:
  ``RCI = (x2 - x1) / S_diff`` with ``S_diff = sqrt(2) * SD1 * sqrt(1 - r)``; reliable when
  ``|RCI| >= 1.96``.
* **Edwards-Nunnally** (Edwards, Yarvis, Mueller, Zingale & Wagman 1978, *Evaluation Quarterly*
  2, 275-291; as set out by Speer 1992, *J Consult Clin Psychol* 60(3), 402-408): the
  pre-treatment true score is estimated regressed towards the mean,
  ``T1 = r (x1 - M1) + M1``, and the change is reliable when ``x2`` falls outside
  ``T1 +- 2 * SD1 * sqrt(1 - r)``.
* **Hageman & Arrindell (1993)**, *Behaviour Research and Therapy* 31(7), 693-700 (RC_ID; the
  formula as given by Bauer, Lambert & Nielsen 2004, *J Pers Assess* 82(1), 60-70)::

      r_dd  = (SD1^2 r + SD2^2 r - 2 r12 SD1 SD2) / (SD1^2 + SD2^2 - 2 r12 SD1 SD2)
      RC_ID = ((x2 - x1) r_dd + (M2 - M1)(1 - r_dd)) / sqrt(r_dd (SE1^2 + SE2^2)),
      SE_t  = SD_t sqrt(1 - r)

  with ``M, SD`` the group's pre and post means and SDs and ``r12`` their correlation;
  reliable when ``|RC_ID| >= 1.96``.

Each function returns ``-1`` (reliable change for the worse), ``0`` or ``+1`` (reliable
improvement) per client, in the measure's "better" direction.

>>> import numpy as np
>>> pre, post = np.array([30.0, 30.0, 20.0]), np.array([20.0, 27.0, 29.0])
>>> jacobson_truax(pre, post, sd_pre=7.5, reliability=0.88, lower_is_better=True).tolist()
[1, 0, -1]
>>> edwards_nunnally(pre, post, mean_pre=25.0, sd_pre=7.5, reliability=0.88,
...                  lower_is_better=True).tolist()
[1, 0, -1]
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from bordin.measures.reliable_change import ROUND

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Z = 1.96
METHODS = ("jacobson_truax", "edwards_nunnally", "hageman_arrindell")


def _check(reliability: float, sd: float) -> None:
    if not 0 <= reliability < 1:
        raise ValueError(f"reliability must be in [0, 1), got {reliability}")
    if not sd > 0:
        raise ValueError(f"the pre-treatment SD must be positive, got {sd}")


def _direction(raw: FloatArray, lower_is_better: bool) -> IntArray:
    signed = -raw if lower_is_better else raw
    return np.sign(np.round(signed, ROUND)).astype(np.int64)


def jacobson_truax(
    pre: FloatArray, post: FloatArray, *, sd_pre: float, reliability: float, lower_is_better: bool
) -> IntArray:
    """Jacobson & Truax (1991) classification, ``|x2 - x1| / S_diff >= 1.96``."""
    _check(reliability, sd_pre)
    s_diff = math.sqrt(2) * sd_pre * math.sqrt(1 - reliability)
    rci = np.round((post - pre) / s_diff, ROUND)
    return np.where(np.abs(rci) >= Z, _direction(rci, lower_is_better), 0)


def edwards_nunnally(
    pre: FloatArray,
    post: FloatArray,
    *,
    mean_pre: float,
    sd_pre: float,
    reliability: float,
    lower_is_better: bool,
) -> IntArray:
    """Edwards-Nunnally: ``x2`` outside ``r (x1 - M1) + M1 +- 2 SD1 sqrt(1 - r)``."""
    _check(reliability, sd_pre)
    true_pre = reliability * (pre - mean_pre) + mean_pre
    half = 2 * sd_pre * math.sqrt(1 - reliability)
    diff = np.round(post - true_pre, ROUND)
    return np.where(np.abs(diff) > half, _direction(diff, lower_is_better), 0)


def hageman_arrindell_index(pre: FloatArray, post: FloatArray, *, reliability: float) -> FloatArray:
    """RC_ID of every client (group moments are taken from ``pre`` and ``post``)."""
    if pre.size < 3:
        raise ValueError("Hageman-Arrindell needs at least three clients with pre and post")
    sd1, sd2 = float(np.std(pre, ddof=1)), float(np.std(post, ddof=1))
    _check(reliability, sd1)
    _check(reliability, sd2)
    r12 = float(np.corrcoef(pre, post)[0, 1])
    num = sd1**2 * reliability + sd2**2 * reliability - 2 * r12 * sd1 * sd2
    den = sd1**2 + sd2**2 - 2 * r12 * sd1 * sd2
    r_dd = num / den
    if not r_dd > 0:
        raise ValueError(
            f"Hageman-Arrindell: the reliability of the difference score is {r_dd:.3f} "
            "(not positive) on these data; use another RCI"
        )
    se2 = (sd1**2 + sd2**2) * (1 - reliability)
    m_change = float(np.mean(post) - np.mean(pre))
    out: FloatArray = ((post - pre) * r_dd + m_change * (1 - r_dd)) / math.sqrt(r_dd * se2)
    return out


def hageman_arrindell(
    pre: FloatArray, post: FloatArray, *, reliability: float, lower_is_better: bool
) -> IntArray:
    """Hageman & Arrindell (1993) classification, ``|RC_ID| >= 1.96``."""
    index = np.round(hageman_arrindell_index(pre, post, reliability=reliability), ROUND)
    return np.where(np.abs(index) >= Z, _direction(index, lower_is_better), 0)
