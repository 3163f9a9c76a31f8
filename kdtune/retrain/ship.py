"""Which re-trained model to ship, and saving both.

The KD student ships only when the decision says it is better than or equivalent to the tuned
CE baseline, it diverged on no more seeds than the baseline, and it costs no more (parameters);
otherwise the CE baseline ships, which is the simpler recipe to reproduce. Both models' best
validation seeds are saved: the one to ship in ``retrain/model/`` (what ``kdtune.export`` and
``pipeline(model=...)`` read), the other in ``retrain/alternative/``, each with its model card.
"""

from __future__ import annotations

from typing import Any

from kdtune.record import record as R

SHIP_DIR, ALTERNATIVE_DIR = f"{R.RETRAIN}/model", f"{R.RETRAIN}/alternative"


def ship_choice(decision: dict[str, Any], failures: dict[str, list[int]],
                params: dict[str, int]) -> dict[str, Any]:
    """``{"model": "student" | "baseline", "reason": ...}`` from the decision and the costs."""
    kind = decision["kind"]
    if decision.get("same_model"):
        return {"model": "student", "reason": "the chosen configuration is the CE-only baseline"}
    if len(failures["student"]) > len(failures["baseline"]):
        return {"model": "baseline", "reason": (
            f"the KD student diverged on {len(failures['student'])} seed(s) "
            f"({', '.join(map(str, failures['student']))}), the baseline on "
            f"{len(failures['baseline'])}")}
    if kind not in ("kd_better", "equivalent"):
        why = {"kd_worse": "KD is worse than tuned CE",
               "inconclusive": "KD was shown neither better than nor equivalent to tuned CE"}[kind]
        return {"model": "baseline", "reason": f"{why}; the plain fine-tune is the simpler recipe"}
    if params["student"] > params["baseline"]:
        return {"model": "baseline", "reason": (
            f"the KD student has more parameters ({params['student']:,} vs "
            f"{params['baseline']:,}) for a {kind.replace('kd_', '')} result")}
    what = "better than" if kind == "kd_better" else "equivalent to"
    return {"model": "student", "reason": f"KD is {what} tuned CE at no more parameters"}


def folders(ship: str) -> dict[str, str]:
    """Record folder of each model: the shipped one in ``retrain/model``."""
    other = "baseline" if ship == "student" else "student"
    return {ship: SHIP_DIR, other: ALTERNATIVE_DIR}
