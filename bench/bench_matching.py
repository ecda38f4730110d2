"""How often does matching offer a ranked list? The null and planted-difference simulations.

Usage (from the repository root)::

    .venv/bin/python bench/bench_matching.py             # 200 clinics per row
    .venv/bin/python bench/bench_matching.py --quick     # 40 clinics per row

Each row simulates clinics with :func:`bordin.measures.matching.simulate_clinic` (fixed seeds
0, 1, ...) and runs the whole rule (:func:`bordin.measures.matching.match`: multilevel model,
held-out check on the later half of the episodes, posterior check of the first-ranked
therapist) for problem area ``area0`` with every therapist eligible. The first rows have no
true differences between therapists, so every list offered is a false offer (the earlier rule
offered one in 11-17% of such clinics); the last rows plant differences on the logit scale
(general SD and area-specific SD, both 0.5) and show how often a list is offered (power).
Nothing is asserted; the figures go in ``docs/matching.md``. CPU time per clinic is printed.
"""

from __future__ import annotations

import argparse
import time

from bordin.measures.intervals import wilson
from bordin.measures.matching import simulate_offer_rate

ROWS: tuple[dict[str, float], ...] = (
    {"therapists": 4, "episodes": 15, "areas": 1},
    {"therapists": 8, "episodes": 30, "areas": 2},
    {"therapists": 12, "episodes": 40, "areas": 2},
    {"therapists": 30, "episodes": 40, "areas": 4},
    {"therapists": 8, "episodes": 30, "areas": 2, "general_sd": 0.5, "area_sd": 0.5},
    {"therapists": 12, "episodes": 40, "areas": 2, "general_sd": 0.5, "area_sd": 0.5},
    {"therapists": 12, "episodes": 80, "areas": 2, "general_sd": 0.5, "area_sd": 0.5},
    {"therapists": 30, "episodes": 40, "areas": 4, "general_sd": 0.5, "area_sd": 0.5},
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 clinics per row")
    parser.add_argument("--permutations", type=int, default=500)
    args = parser.parse_args()
    runs = 40 if args.quick else 200
    print(f"{'clinic':<58} {'offered':>8} {'95% CI':>13} {'CPU s/clinic':>13}")
    for row in ROWS:
        start = time.process_time()
        rate = simulate_offer_rate(runs, permutations=args.permutations, **row)  # type: ignore[arg-type]
        cpu = (time.process_time() - start) / runs
        low, high = wilson(round(rate * runs), runs)
        label = ", ".join(f"{k}={v:g}" for k, v in row.items())
        print(f"{label:<58} {rate:>8.1%} {low:>6.1%}-{high:<6.1%} {cpu:>13.3f}")


if __name__ == "__main__":
    main()
