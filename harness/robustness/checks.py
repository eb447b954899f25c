"""Automatic sanity checks: each a named flag stored with a robustness result.

A raised flag says a robustness number is probably wrong (too high) or the model
breaks the harness's conventions; the leaderboard shows it. Comparisons between
accuracies allow :data:`TOLERANCE` (0.2 percentage points) before flagging; the
two that compare randomised runs of one attack (eps, steps) are also paired tests
(:data:`SIGNIFICANCE`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

ACCURACY_RISES_WITH_EPS = "accuracy-rises-with-eps"
MORE_STEPS_WEAKER = "more-pgd-steps-weaker"
WHITEBOX_WEAKER_THAN_TRANSFER = "whitebox-weaker-than-transfer"
BLACKBOX_BEATS_WHITEBOX = "square-beats-whitebox"
NONDETERMINISTIC = "nondeterministic-model"
PROBABILITY_OUTPUTS = "outputs-are-probabilities"
ZERO_GRADIENTS = "zero-input-gradients"
ADVERSARIAL_OUT_OF_BUDGET = "adversarial-out-of-budget"
ATTACK_FAILED = "attack-failed"

#: every flag and what raises it
FLAGS: dict[str, str] = {
    ACCURACY_RISES_WITH_EPS: "robust accuracy at a larger eps exceeds that at a smaller one (or clean accuracy)",
    MORE_STEPS_WEAKER: "PGD with more steps leaves more examples correct than PGD with fewer",
    WHITEBOX_WEAKER_THAN_TRANSFER: "the white-box ensemble is weaker than examples transferred from a reference model",
    BLACKBOX_BEATS_WHITEBOX: "Square (black-box) broke more than 0.2 points of images the white-box attacks "
                             "left correct: gradient masking",
    NONDETERMINISTIC: "5 forward passes on the same images disagree by more than 1e-4",
    PROBABILITY_OUTPUTS: "the model returns probabilities (rows in [0, 1] summing to 1), not logits",
    ZERO_GRADIENTS: "the cross-entropy has an all-zero (or non-finite) gradient wrt the input on some examples",
    ADVERSARIAL_OUT_OF_BUDGET: "an attack returned images outside the eps ball or [0, 1], or NaN "
                               "(they were projected back before scoring)",
    ATTACK_FAILED: "an attack of the ensemble raised an error (its examples count as not attacked)",
}

#: accuracy margin (fraction) allowed before a comparison flags: 0.2 percentage points
TOLERANCE = 0.002
#: forward passes and agreement of the determinism check
DETERMINISM_PASSES = 5
DETERMINISM_ATOL = 1e-4
#: slack on budgets and the [0, 1] box for float32 rounding
BUDGET_ATOL = 1e-6


@dataclass
class SanityCheck:
    """One check's outcome: ``flagged`` raises flag ``name``; ``values`` hold the evidence (JSON-able)."""

    name: str
    flagged: bool
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "flagged": self.flagged, "skipped": self.skipped, "detail": self.detail,
                "values": self.values}


def skipped(name: str, why: str) -> SanityCheck:
    """A check that could not run (e.g. no transfer examples given)."""
    return SanityCheck(name, False, f"skipped: {why}", skipped=True)


#: a paired rise must also exceed this many standard errors (McNemar) to flag, so one example
#: flipping between two randomised runs on a small test set is not reported as a broken model
SIGNIFICANCE = 2.0


def _paired_rises(alive: Mapping[float, np.ndarray], tolerance: float) -> list[dict[str, Any]]:
    """Pairs (smaller key, larger key) where more examples survive at the larger key.

    ``b`` examples survive only at the larger key, ``c`` only at the smaller; a rise
    counts when ``(b - c) / n > tolerance`` and ``b - c > SIGNIFICANCE * sqrt(b + c)``.
    """
    keys = sorted(alive)
    rises = []
    for i, small in enumerate(keys):
        for large in keys[i + 1 :]:
            a, z = np.asarray(alive[small], bool), np.asarray(alive[large], bool)
            b, c = int(np.sum(z & ~a)), int(np.sum(a & ~z))
            if (b - c) / max(1, len(a)) > tolerance and b - c > SIGNIFICANCE * np.sqrt(b + c):
                rises.append({"from": float(small), "to": float(large), "accuracy_from": float(a.mean()),
                              "accuracy_to": float(z.mean()), "only_to": b, "only_from": c})
    return rises


def check_eps_monotone(series: Mapping[str, Mapping[float, np.ndarray]], clean: np.ndarray,
                       tolerance: float = TOLERANCE) -> SanityCheck:
    """Flag when a series (ensemble, each attack: eps -> per-example survival) leaves more examples
    correct at a larger eps than at a smaller one (clean counts as eps 0)."""
    found = {name: r for name, values in series.items() if (r := _paired_rises({0.0: clean, **values}, tolerance))}
    detail = "; ".join(f"{name}: {r[0]['accuracy_to']:.2%} at eps {r[0]['to'] * 255:.3g}/255 > "
                       f"{r[0]['accuracy_from']:.2%} at {r[0]['from'] * 255:.3g}/255" for name, r in found.items())
    return SanityCheck(ACCURACY_RISES_WITH_EPS, bool(found), detail or "accuracy falls with eps", {"rises": found})


def check_steps_monotone(by_steps: Mapping[int, Mapping[float, np.ndarray]],
                         tolerance: float = TOLERANCE) -> SanityCheck:
    """Flag when PGD with more steps leaves more examples correct than with fewer, at some eps
    (``by_steps``: steps -> eps -> per-example survival)."""
    if len(by_steps) < 2:
        return skipped(MORE_STEPS_WEAKER, "needs PGD at two step counts")
    eps_values = sorted(set.intersection(*(set(v) for v in by_steps.values())))
    found = []
    for eps in eps_values:
        for rise in _paired_rises({steps: values[eps] for steps, values in by_steps.items()}, tolerance):
            found.append({"eps": float(eps), "fewer_steps": int(rise["from"]), "more_steps": int(rise["to"]),
                          "accuracy_fewer": rise["accuracy_from"], "accuracy_more": rise["accuracy_to"]})
    detail = "; ".join(f"eps {f['eps'] * 255:.3g}/255: {f['more_steps']} steps leave {f['accuracy_more']:.2%} > "
                       f"{f['accuracy_fewer']:.2%} with {f['fewer_steps']}" for f in found)
    values = {"accuracy": [{"steps": int(s), "eps": float(e), "accuracy": float(np.mean(v))}
                           for s, by_eps in sorted(by_steps.items()) for e, v in sorted(by_eps.items())],
              "rises": found}
    return SanityCheck(MORE_STEPS_WEAKER, bool(found), detail or "more steps are never weaker", values)


def _compare(name: str, stronger: Mapping[float, float], weaker: Mapping[float, float], margin: float,
             what: str) -> SanityCheck:
    """Flag eps where ``weaker`` (should be the higher accuracy) is below ``stronger`` by more than ``margin``."""
    found = [{"eps": float(e), "expected_lower": float(stronger[e]), "got": float(weaker[e])}
             for e in sorted(set(stronger) & set(weaker)) if stronger[e] - weaker[e] > margin]
    detail = "; ".join(f"eps {f['eps'] * 255:.3g}/255: {what} {f['got']:.2%} vs {f['expected_lower']:.2%}"
                       for f in found)
    return SanityCheck(name, bool(found), detail or "no", {"violations": found})


def check_transfer(whitebox: Mapping[float, float], transfer: Mapping[float, float],
                   tolerance: float = TOLERANCE) -> SanityCheck:
    """Flag eps where transferred examples leave fewer examples correct than the white-box ensemble."""
    check = _compare(WHITEBOX_WEAKER_THAN_TRANSFER, whitebox, transfer, tolerance, "transfer")
    check.detail = check.detail if check.flagged else "white-box is at least as strong as transfer"
    return check


def check_blackbox(whitebox: Mapping[float, float], blackbox: Mapping[float, float],
                   margin: float = TOLERANCE) -> SanityCheck:
    """Flag eps where ``blackbox`` is more than ``margin`` below ``whitebox`` (the white-box members' worst case):
    in the ensemble's cascade, the accuracy after the black-box members (Square), which attack only what the
    white-box members left correct; without it, the black-box members' own worst case."""
    check = _compare(BLACKBOX_BEATS_WHITEBOX, whitebox, blackbox, margin, "square")
    check.detail = check.detail if check.flagged else "square does not beat the white-box attacks"
    return check


def check_determinism(outputs: list[np.ndarray], atol: float = DETERMINISM_ATOL) -> SanityCheck:
    """Flag when repeated forward passes (float logits) on the same images differ by more than ``atol``."""
    spread = max((float(np.max(np.abs(o - outputs[0]))) if o.size else 0.0) for o in outputs)
    spread = spread if np.isfinite(spread) else float("inf")
    return SanityCheck(NONDETERMINISTIC, spread > atol,
                       f"{len(outputs)} forward passes differ by up to {spread:.3g}",
                       {"passes": len(outputs), "max_abs_difference": spread, "atol": atol})


def check_logits(logits: np.ndarray, atol: float = 1e-3) -> SanityCheck:
    """Flag when every output row is in [0, 1] and sums to 1: probabilities, which hide gradients."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.size == 0:
        return skipped(PROBABILITY_OUTPUTS, "no outputs")
    in_box = bool(np.all((logits >= -atol) & (logits <= 1 + atol)))
    sums = logits.sum(axis=1)
    flagged = in_box and bool(np.all(np.abs(sums - 1) <= atol))
    detail = "every row is in [0, 1] and sums to 1" if flagged else "outputs are logits"
    return SanityCheck(PROBABILITY_OUTPUTS, flagged, detail,
                       {"min": float(logits.min()), "max": float(logits.max()),
                        "row_sum_min": float(sums.min()), "row_sum_max": float(sums.max())})


def check_gradients(gradients: np.ndarray) -> SanityCheck:
    """Flag when any example's input gradient is all zero or not finite."""
    gradients = np.asarray(gradients)
    if gradients.size == 0:
        return skipped(ZERO_GRADIENTS, "no examples")
    flat = gradients.reshape(len(gradients), -1)
    finite = np.isfinite(flat).all(axis=1)
    zero = finite & ~np.any(flat != 0, axis=1)
    bad = int(np.sum(zero | ~finite))
    detail = (f"{int(zero.sum())} of {len(flat)} examples have an all-zero input gradient, "
              f"{int((~finite).sum())} a non-finite one") if bad else "every example has a finite, non-zero gradient"
    return SanityCheck(ZERO_GRADIENTS, bad > 0, detail,
                       {"examples": len(flat), "zero": int(zero.sum()), "non_finite": int((~finite).sum()),
                        "mean_abs": float(np.mean(np.abs(flat[finite]))) if finite.any() else None})


def project_adversarial(adversarial: np.ndarray, clean: np.ndarray, eps: float, atol: float = BUDGET_ATOL,
                        norm: str = "linf") -> tuple[np.ndarray, dict[str, int]]:
    """``adversarial`` made valid (NaN -> clean, projected into the eps ball of ``norm`` (linf or l2), clipped
    into [0, 1]) and counts of what was wrong."""
    adversarial = np.asarray(adversarial, dtype=np.float32)
    clean = np.asarray(clean, dtype=np.float32)
    if adversarial.shape != clean.shape:
        raise ValueError(f"attack returned shape {adversarial.shape} for images shaped {clean.shape}")
    axes = tuple(range(1, adversarial.ndim))
    nan = ~np.isfinite(adversarial).all(axis=axes)
    fixed = np.where(np.isfinite(adversarial), adversarial, clean)
    box = ((fixed < -atol) | (fixed > 1 + atol)).any(axis=axes)
    if norm == "l2":
        size = np.sqrt(np.sum(np.square(fixed - clean, dtype=np.float64), axis=axes, keepdims=True))
        budget = (size > eps * (1 + atol) + atol).reshape(-1)
        fixed = clean + (fixed - clean) * np.minimum(1.0, eps / np.maximum(size, 1e-12)).astype(np.float32)
    else:
        budget = (np.abs(fixed - clean) > eps + atol).any(axis=axes)
        fixed = np.clip(fixed, clean - eps, clean + eps)
    fixed = np.clip(fixed, 0.0, 1.0)  # only shrinks the perturbation: it stays inside either ball
    return fixed, {"not_finite": int(nan.sum()), "outside_box": int(box.sum()), "outside_budget": int(budget.sum())}


def check_budgets(violations: Mapping[str, Mapping[float, Mapping[str, int]]]) -> SanityCheck:
    """Flag when any attack at any eps returned invalid images (counts from :func:`project_adversarial`)."""
    found = [{"attack": attack, "eps": float(eps), **counts}
             for attack, by_eps in violations.items() for eps, counts in sorted(by_eps.items())
             if any(counts.values())]
    detail = "; ".join(f"{f['attack']} at eps {f['eps'] * 255:.3g}/255: {f['outside_budget']} outside the ball, "
                       f"{f['outside_box']} outside [0, 1], {f['not_finite']} not finite" for f in found)
    return SanityCheck(ADVERSARIAL_OUT_OF_BUDGET, bool(found), detail or "every adversarial image is valid",
                       {"violations": found})


def check_failures(errors: Mapping[str, list[str]]) -> SanityCheck:
    """Flag attacks that raised."""
    found = {name: messages for name, messages in errors.items() if messages}
    detail = "; ".join(f"{name}: {messages[0]}" for name, messages in found.items())
    return SanityCheck(ATTACK_FAILED, bool(found), detail or "every attack ran", {"errors": found})
