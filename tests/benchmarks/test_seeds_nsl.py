"""The NSL seed reproductions (benchmarks/seeds/nsl_*.py) run end to end with --quick and report seed vs ours."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from helpers import make_tiny_imagenet, tensorflow_for_tests

SEEDS = Path(__file__).resolve().parents[2] / "benchmarks" / "seeds"
MODELS = ("baseline", "adv-regularized")

pytestmark = pytest.mark.slow  # each script trains two tiny models (about 15 s of CPU for the module)


def script(name: str):
    tensorflow_for_tests()
    sys.path.insert(0, str(SEEDS))
    try:
        spec = importlib.util.spec_from_file_location(f"seeds_{name}", SEEDS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SEEDS))
    return module


def check_result(path: Path, count: int, seed_rows: dict[str, dict[str, float]], transfer: bool) -> dict:
    result = json.loads(path.read_text())
    assert result["scale"] == "quick" and result["nsl"]["adv_step_size"] == 0.2
    assert result["nsl"]["adv_grad_norm"] == "infinity" and result["nsl"]["multiplier"] == 0.2
    results = result["results"]
    assert results["settings"]["count"] == count
    keys = ["clean", "nsl_reference", "nsl_whitebox"] + (["pgd2_reference@0.2"] if transfer else [])
    assert set(keys) <= set(results) and transfer == any(key.startswith("pgd") for key in results)
    for key in keys:
        for name in MODELS:
            assert 0.0 <= results[key][name]["top1"] <= results[key][name]["top5"] <= 1.0
    for key, figures in seed_rows.items():  # the seed's own figures sit next to ours
        row = next(r for r in result["rows"] if r["evaluation"] == key and r["metric"] == "top1")
        assert {name: row[f"{name} (seed)"] for name in figures} == figures
    return result


def test_nsl_tutorial_quick_trains_both_models_and_compares_them_on_reference_perturbations(tmp_path, capsys):
    tutorial = script("nsl_tutorial")
    assert tutorial.main(["--quick", "--out", str(tmp_path), "--threads", "1"]) == 0
    result = check_result(tmp_path / "nsl_tutorial_quick.json", 96,
                          {"clean": {"baseline": 0.8934375, "adv-regularized": 0.911625},
                           "nsl_reference": {"baseline": 0.2201466, "adv-regularized": 0.8203125}},
                          transfer=False)
    assert result["dataset"] == "digits" and result["training"]["optimizer"] == "adam"
    assert result["training"]["batch_size"] == 28
    assert set(result["results"]["nsl_independent"]) == set(MODELS)  # a reference neither model is
    assert "| nsl_reference | top1 | 22.0% |" in capsys.readouterr().out


def test_nsl_tiny_imagenet_quick_runs_the_recipe_on_a_tiny_imagenet_folder(tmp_path, capsys):
    tiny = script("nsl_tiny_imagenet")
    folder = make_tiny_imagenet(tmp_path / "data")
    assert tiny.main(["--quick", "--data", str(folder), "--out", str(tmp_path), "--threads", "1"]) == 0
    result = check_result(tmp_path / "nsl_tiny_imagenet_quick.json", 6,
                          {"train_nsl_reference": {"baseline": 0.5007, "adv-regularized": 0.9604}}, transfer=True)
    assert result["dataset"] == "tiny-imagenet" and result["sizes"] == {"train": 12, "val": 6, "test": 6}
    training = result["training"]  # the recipe of submissions/mobilenet-nsl
    assert training["unfreeze"] == "progressive" and training["optimizer"] == "sgd"
    assert [a["name"] for a in training["augmentations"]] == ["hflip", "random-crop", "color-jitter",
                                                              "gaussian-noise", "shot-noise", "salt-and-pepper"]
    assert result["events"]["adv-regularized"][0] == "epoch 1: train head"
    assert result["results"]["train_settings"]["count"] == 12
    assert "train_nsl_reference" in capsys.readouterr().out


def test_a_missing_data_folder_is_one_line_naming_it(tmp_path, capsys):
    sys.path.insert(0, str(SEEDS))
    try:
        import common
    finally:
        sys.path.remove(str(SEEDS))

    def main(argv):
        common.load_data(common.parse_args("test", argv))
        return 0

    missing = tmp_path / "no-such-folder"
    assert common.run(main, ["--quick", "--data", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and str(missing) in err.splitlines()[0] and "Traceback" not in err
