"""The fallback loop: full quantization first, then sensitivity-ranked fallback."""

from __future__ import annotations

from edgeport.calibration.budget import Budget, fallback, units_of
from edgeport.model.families import BERT
from edgeport.verify import Accuracy, Check, Fidelity


def check(cos: float, top1: float | None = None, drop: float | None = None, agreement: float = 1.0) -> Check:
    fid = Fidelity(mean_cosine=cos, min_cosine=cos, max_abs_error=0.0, top1_agreement=top1, samples=10)
    acc = None if drop is None else Accuracy(fp32=0.9, artifact=0.9 - drop / 100, drop_points=drop,
                                             label_agreement=agreement, samples=10)
    return Check(fidelity=fid, accuracy=acc)

LAYERS = [f"encoder.layer.{b}.{m}" for b in range(2) for m in
          ("attention.self.query", "attention.output.dense", "intermediate.dense", "output.dense")]
# each layer's (made-up but consistent) cost in cosine when quantized
COST = {layer: (0.004 if layer.endswith(".output.dense") and "attention" not in layer else 0.0005) for layer in LAYERS}


def fake_build(calls):
    def try_build(keep_fp):
        calls.append(keep_fp)
        loss = sum(cost for layer, cost in COST.items() if layer not in keep_fp)
        return check(1 - loss)
    return try_build


def test_units_by_role_and_by_layer():
    roles = units_of(LAYERS, BERT, "role")
    assert set(roles) == {"attn_qkv", "attn_out", "ffn_up", "ffn_down"}
    assert roles["ffn_down"] == ("encoder.layer.0.output.dense", "encoder.layer.1.output.dense")
    assert len(units_of(LAYERS, BERT, "layer")) == len(LAYERS)


def test_no_fallback_when_budget_met():
    calls = []
    result = fallback(Budget(min_fidelity=0.98), units_of(LAYERS, BERT, "role"), LAYERS, fake_build(calls))
    assert result.met and result.chosen.keep_fp == () and calls == [()]


def test_budget_forces_fallback_of_most_sensitive_first():
    calls = []
    result = fallback(Budget(min_fidelity=0.995), units_of(LAYERS, BERT, "role"), LAYERS, fake_build(calls))
    assert result.met
    assert result.sensitivity[0].unit == "ffn_down"  # ranked worst first
    assert set(result.chosen.keep_fp) == {"encoder.layer.0.output.dense", "encoder.layer.1.output.dense"}
    assert result.chosen.check.fidelity.mean_cosine >= 0.995


def test_refinement_requantizes_layers_of_the_last_unit_that_the_budget_allows():
    calls = []
    # loss of all: 2*0.004 + 6*0.0005 = 0.011; keeping one ffn_down layer gives 0.007
    result = fallback(Budget(min_fidelity=0.9925), units_of(LAYERS, BERT, "role"), LAYERS, fake_build(calls))
    assert result.met and len(result.chosen.keep_fp) == 1
    assert result.chosen.keep_fp[0].endswith(".output.dense")
    assert result.chosen.check.fidelity.mean_cosine >= 0.9925


def test_nothing_meets_budget_keeps_closest_and_says_so():
    calls = []
    result = fallback(Budget(min_fidelity=1.0001), units_of(LAYERS, BERT, "role"), LAYERS, fake_build(calls))
    assert not result.met
    best = max(t.check.fidelity.mean_cosine for t in result.trials)
    assert result.chosen.check.fidelity.mean_cosine == best


def test_accuracy_budget():
    budget = Budget(min_fidelity=None, max_drop=0.3)
    ok, bad = check(0.9, drop=0.2), check(0.9, drop=0.5)
    assert budget.meets(ok) and not budget.meets(bad)
    assert "accuracy drop 0.50 points > 0.3" in budget.shortfalls(bad)[0]


def test_min_fidelity_bounds_label_agreement_on_eval_data():
    budget = Budget(min_fidelity=0.998)
    assert budget.shortfalls(check(0.9999, 0.98, 0.0, 0.995)) == ["label agreement on eval data 0.9950 < 0.998"]
    assert budget.meets(check(0.9999, 0.98, 0.0, 0.999))  # eval data, when given, is what counts
    assert budget.shortfalls(check(0.99, 0.98)) == ["top-1 agreement 0.9800 < 0.998"]


def test_the_search_holds_only_the_trials_it_may_still_choose():
    """Scratch space stays bounded: at any time at most the best trial so far and the one
    being built are held, and the chosen trial is among them at the end."""
    from edgeport.calibration.budget import Budget as B

    for min_fidelity, granularity in ((0.995, "role"), (0.9925, "role"), (1.0001, "role"), (1.0001, "layer"),
                                      (0.9925, "layer")):
        held: set = set()
        peak = 0
        build = fake_build([])

        def try_build(keep):
            nonlocal peak
            held.add(keep)
            peak = max(peak, len(held))
            return build(keep)

        result = fallback(B(min_fidelity=min_fidelity), units_of(LAYERS, BERT, granularity), LAYERS, try_build,
                          release=held.discard)
        assert peak <= 2, (min_fidelity, granularity, peak)
        assert held == {result.chosen.keep_fp}, (min_fidelity, granularity, held)
        assert len(result.trials) + len(result.sensitivity) > 2  # many trials were built, few were held
