import pytest

from gaitlib.models import options
from gaitlib.training import recipe


@pytest.mark.parametrize("model, p, k, iterations, milestones", [
    ("gaitmm", 32, 8, 160000, [150000]),
    ("local3d", 32, 16, 250000, [150000]),
    ("cstl", 32, 8, 250000, [150000]),
])
def test_oumvlp_paper_recipes_follow_spec(model, p, k, iterations, milestones):
    config = recipe(model, "paper", dataset="oumvlp")
    assert (config.sampling.p, config.sampling.k) == (p, k)
    assert (config.schedule.iterations, config.schedule.milestones) == (iterations, milestones)
    assert config.model.options == {"variant": "oumvlp"}
    assert set(config.model.options) <= set(options(model))
    assert config.optimizer.name == "adam" and config.optimizer.lr == 1e-4
    casia = recipe(model, "paper", dataset="casia-b")
    assert casia.model.options == {} and casia.schedule.iterations != iterations


@pytest.mark.parametrize("model, p, k, iterations", [
    ("gaitmm", 8, 8, 80000), ("local3d", 8, 16, 120000), ("cstl", 8, 8, 100000)])
def test_casia_paper_recipes_follow_spec(model, p, k, iterations):
    config = recipe(model, "paper", dataset="synthetic")
    assert (config.sampling.p, config.sampling.k, config.schedule.iterations) == (p, k, iterations)
    assert config.sampling.frames == 30 and config.loss.margin == 0.2


def test_baselines_have_no_oumvlp_recipe():
    with pytest.raises(ValueError, match="OU-MVLP recipes exist for: gaitmm, local3d, cstl"):
        recipe("gaitset", "paper", dataset="oumvlp")


def test_the_cpu_profile_tests_all_real_test_subjects():
    # the synthetic edition keeps the 30-minute budget: first 10 test subjects x 10 frames;
    # real CASIA-B is scored on all 50 test subjects, 10 frames each (bench/eval_scale.py)
    from gaitlib.runs.cache import RunSpec, resolve
    from gaitlib.training import recipe

    synthetic = resolve(RunSpec.of("cstl", data="synthetic", profile="cpu")).eval
    real = resolve(RunSpec.of("cstl", data="casia-b", profile="cpu")).eval
    assert (synthetic.max_subjects, synthetic.max_frames) == (10, 10)
    assert (real.max_subjects, real.max_frames) == (0, 10)
    assert recipe("cstl", "cpu", "casia-b").eval.max_subjects == 0  # `gaitlib train` on a real store
    assert recipe("cstl", "paper", "casia-b").eval.max_frames == 0  # the papers: every frame
    assert recipe("cstl", "smoke", "casia-b").eval.max_subjects == 2  # smoke stays tiny
