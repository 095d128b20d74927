"""The fast teacher's IG quadrature (issue 34): `teacher.ig_rule` / `teacher.ig_rule_steps` choose the rule and its
point count, the plain reference keeps captum's Gauss-Legendre at `ig_steps`, and a pseudo-label records both.

On the toy classifier of `01a_fixtures` (a max-pooled conv net: a rough path integrand) the midpoint rule lands
closer to converged IG than Gauss-Legendre at the same number of network evaluations. No timing is asserted here;
speed is measured by `labelup bench teacher`.
"""
import pytest
import torch
from captum.attr import IntegratedGradients

from labelup.core import TeacherCfg, UsageError, get_profile
from labelup.explain import IG_RULES, Explainer
from labelup.settings import teacher_of
from labelup._fixtures import toy_slabs, train_toy_classifier


@pytest.fixture(scope="module")
def toy():
    torch.set_num_threads(1)
    model = train_toy_classifier()
    X, y, _ = toy_slabs(16, seed=1)
    return model, X[torch.nonzero(y)[:4, 0]]


def _cfg(**kw):
    return TeacherCfg(amp=False, channels_last=False, **kw)


def _captum(model, x, rule, n):
    "IG of `x` against the all-zero reference with captum directly."
    ig = IntegratedGradients(lambda t: model(t).reshape(-1))
    return ig.attribute(x, baselines=torch.zeros_like(x), n_steps=n, method=rule)


def _err(a, ref):
    return ((a - ref).norm() / ref.norm()).item()


def test_rule_is_captums_rule(toy):
    model, X = toy
    x = X[:1]
    att = Explainer(model, _cfg(ig_rule="riemann_middle", ig_rule_steps=8), "cpu").attribute(x)
    assert att.steps == [8]                          # the rule's points, as the record's ig_steps_mean reads them
    torch.testing.assert_close(att.heat, _captum(model, x, "riemann_middle", 8).clamp_min(0), atol=1e-5, rtol=1e-4)


def test_plain_reference_keeps_gauss_legendre(toy):
    model, X = toy
    x = X[:1]
    ref = Explainer(model, _cfg(ig_steps=16, ig_rule="riemann_middle", ig_rule_steps=4), "cpu", fast=False)
    assert (ref.rule, ref.steps) == ("gausslegendre", 16)
    att = ref.attribute(x)
    assert att.steps == [16]
    torch.testing.assert_close(att.heat, _captum(model, x, "gausslegendre", 16).clamp_min(0), atol=1e-5, rtol=1e-4)
    fast = Explainer(model, _cfg(ig_steps=16), "cpu")
    assert (fast.rule, fast.steps) == ("gausslegendre", 16)  # the defaults: today's teacher


def test_midpoint_closer_to_converged_than_gauss_legendre(toy):
    model, X = toy
    conv = _captum(model, X, "gausslegendre", 256)
    err = {(rule, n): _err(_captum(model, X, rule, n), conv) for rule in ("gausslegendre", "riemann_middle") for n in (8, 16)}
    assert err[("riemann_middle", 8)] < err[("gausslegendre", 8)], err
    assert err[("riemann_middle", 16)] < err[("gausslegendre", 16)], err
    assert err[("riemann_middle", 16)] < err[("riemann_middle", 8)], err   # and it converges


def test_completeness_gap_and_determinism(toy):
    model, X = toy
    x = X[1:2]
    gaps = {n: Explainer(model, _cfg(ig_rule="riemann_middle", ig_rule_steps=n), "cpu").attribute(x).delta[0] for n in (2, 64)}
    assert gaps[64] < 0.1 and gaps[64] < gaps[2] / 3, gaps
    ex = Explainer(model, _cfg(ig_rule="riemann_trapezoid", ig_rule_steps=6), "cpu")
    a, b = ex.attribute(x), ex.attribute(x)
    assert torch.equal(a.heat, b.heat) and a.delta == b.delta and a.steps == [6]


def test_settings_record_the_rule():
    base = get_profile("smoke")
    assert base.teacher.ig_rule == "gausslegendre" and base.teacher.ig_rule_steps == 0
    s = teacher_of(base).outcome["teacher"]
    assert s["ig_rule"] == "gausslegendre" and s["ig_rule_steps"] == 0 and s["ig_steps"] == base.teacher.ig_steps
    mid = get_profile("smoke", ["teacher.ig_rule=riemann_middle", "teacher.ig_rule_steps=12", "teacher.ig_steps=8"])
    assert (mid.teacher.ig_rule, mid.teacher.ig_rule_steps, mid.teacher.ig_steps) == ("riemann_middle", 12, 8)
    assert teacher_of(mid).outcome != teacher_of(base).outcome     # finished pseudo-labels of another rule are stale
    with pytest.raises(UsageError): get_profile("smoke", ["teacher.ig_rule_steps=-1"])
    assert set(IG_RULES) >= {"gausslegendre", "riemann_middle", "riemann_trapezoid"}


def test_unknown_rule_refused(toy):
    model, _ = toy
    with pytest.raises(ValueError, match="unknown IG rule"):
        Explainer(model, _cfg(ig_rule="simpson"), "cpu")
