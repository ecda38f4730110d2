from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordin.measures.clinical_significance import categories, cutoffs
from bordin.measures.instruments import DefinitionError, parse_definitions


def test_hand_worked_cutoffs_lower_is_better() -> None:
    # Dysfunctional 25 (SD 8), functional 7 (SD 5): a = 25 - 16 = 9, b = 7 + 10 = 17,
    # c = (5 * 25 + 8 * 7) / 13 = 181 / 13 = 13.923. Ranges 9..41 and -3..17 overlap: c.
    cut = cutoffs(dys_mean=25, dys_sd=8, lower_is_better=True, norm_mean=7, norm_sd=5)
    assert (cut.a, cut.b, cut.c, cut.chosen, cut.value) == (9.0, 17.0, 13.923, "c", 13.923)


def test_higher_is_better_mirrors() -> None:
    # Wellbeing-like: dysfunctional 30 (SD 5), functional 50 (SD 6): a = 40, b = 38, c = 39.09
    cut = cutoffs(dys_mean=30, dys_sd=5, lower_is_better=False, norm_mean=50, norm_sd=6)
    assert (cut.a, cut.b, cut.c, cut.chosen) == (40.0, 38.0, 39.091, "c")


def test_rule_without_norms_and_without_overlap() -> None:
    assert cutoffs(dys_mean=25, dys_sd=8, lower_is_better=True).chosen == "a"
    far = cutoffs(dys_mean=40, dys_sd=4, lower_is_better=True, norm_mean=10, norm_sd=3)
    assert far.chosen == "b"  # 32..48 and 4..16 do not overlap
    assert far.value == 16.0
    assert "do not overlap" in far.why


def test_categories_hand_worked() -> None:
    cut = cutoffs(dys_mean=25, dys_sd=8, lower_is_better=True, norm_mean=7, norm_sd=5)
    before = np.array([30.0, 30.0, 30.0, 12.0, 10.0])
    after = np.array([12.0, 20.0, 27.0, 5.0, 17.0])
    got = categories(before, after, threshold=7.0, cut=cut).tolist()
    # 30->12 crossed 13.923 reliably; 30->20 reliable but still dysfunctional; 30->27 not
    # reliable; 12->5 reliable but started functional; 10->17 reliably worse.
    assert got == ["recovered", "improved", "unchanged", "improved", "deteriorated"]


@given(st.floats(5, 40), st.floats(1, 10), st.floats(0, 20), st.floats(1, 10), st.booleans())
def test_c_lies_between_the_means(dm: float, ds: float, nm: float, ns: float, low: bool) -> None:
    cut = cutoffs(dys_mean=dm, dys_sd=ds, lower_is_better=low, norm_mean=nm, norm_sd=ns)
    assert cut.c is not None
    assert min(dm, nm) - 1e-3 <= cut.c <= max(dm, nm) + 1e-3
    assert cut.chosen in ("b", "c")


def test_norms_in_the_measures_file() -> None:
    text = '[measures.bdi]\ndirection = "lower_is_better"\nmin = 0\nmax = 63\n'
    text += "reliable_change = 7\nnorm_mean = 7.0\nnorm_sd = 5.5\nreliability = 0.9\nsd = 8\n"
    bdi = parse_definitions(text, "m.toml")["bdi"]
    assert (bdi.norm_mean, bdi.norm_sd, bdi.reliability, bdi.sd) == (7.0, 5.5, 0.9, 8.0)
    with pytest.raises(DefinitionError, match="both 'norm_mean' and 'norm_sd'"):
        parse_definitions(text.replace("norm_sd = 5.5\n", ""), "m.toml")
    with pytest.raises(DefinitionError, match="'norm_sd' must be positive"):
        parse_definitions(text.replace("norm_sd = 5.5", "norm_sd = 0"), "m.toml")
