"""``harness plot ...`` from saved files, and the explanation grid drawn from made-up maps (no framework)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from harness.cli.main import app
from harness.explain import Explanation, layer_maps
from harness.plots import CELL, DPI, HEADER, MAP_CELL, PANELS, plot_activations, plot_explanations, saliency_maps
from harness.training import EpochMetrics, TrainingHistory, save_metrics_json


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def assert_png(path, size):
    with Image.open(path) as image:
        assert image.size == size
        assert np.asarray(image.convert("L"), dtype=np.float32).std() > 0  # not blank


def write_metrics(path, offset=0.0):
    history = TrainingHistory(meta={"defense": "standard"})
    for epoch in range(1, 6):
        history.append(EpochMetrics(epoch, 2.0 / epoch + offset, 0.2 * epoch, 0.9, 0.01, 1.0, val_loss=2.2 / epoch,
                                    val_top1=0.18 * epoch, stage=int(epoch >= 3),
                                    event="unfrozen: all" if epoch == 3 else None))
    return save_metrics_json(history, path)


def test_plot_curves_one_and_several(tmp_path):
    first = write_metrics(tmp_path / "a" / "cpu" / "metrics.json")
    second = write_metrics(tmp_path / "b" / "cpu" / "metrics.json", offset=0.3)
    result = invoke("plot", "curves", str(first))
    assert result.exit_code == 0, result.output
    assert_png(first.parent / "curves.png", (1000, 400))
    result = invoke("plot", "curves", str(first), str(second), "--out", str(tmp_path / "both.png"))
    assert result.exit_code == 0, result.output
    assert_png(tmp_path / "both.png", (1100, 420))


def test_plot_robustness_several_models(tmp_path):
    paths = []
    for name, scale in (("a", 1.0), ("b", 0.5)):
        path = tmp_path / name / "cpu" / "robustness" / "robustness.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"clean_accuracy": 0.9 * scale, "flags": ["gradient-masking"] if scale < 1 else [],
                                    "robust_accuracy": [{"eps": e / 255, "accuracy": scale * (0.8 - e / 20)}
                                                        for e in (2, 4, 8)]}))
        paths.append(str(path))
    result = invoke("plot", "robustness", *paths, "--out", str(tmp_path / "r.png"))
    assert result.exit_code == 0, result.output
    assert_png(tmp_path / "r.png", (700, 450))


def test_plot_corruptions_heat_map(tmp_path):
    lines = ["corruption,group,severity,accuracy,error,count"]
    for corruption in ("gaussian_noise", "fog", "frost"):
        lines += [f"{corruption},benchmark,{s},{1 - s / 6:.3f},{s / 6:.3f},10" for s in range(1, 6)]
    (tmp_path / "corruptions.csv").write_text("\n".join(lines) + "\n")
    result = invoke("plot", "corruptions", str(tmp_path / "corruptions.csv"))
    assert result.exit_code == 0, result.output
    assert_png(tmp_path / "corruptions.png", (700, round((1.2 + 0.35 * 3) * DPI)))


def test_plot_compare_evaluation_and_leaderboard(tmp_path):
    evaluation = tmp_path / "evaluation.csv"
    evaluation.write_text("submission,framework,set,top1,top5,loss,images\n"
                          + "".join(f"{s},torch,{name},{t},0.9,1.0,10\n" for s, k in (("a", 1.0), ("b", 0.6))
                                    for name, t in (("clean", 0.9 * k), ("augmented", 0.7 * k), ("fgsm 8/255", 0.2))))
    result = invoke("plot", "compare", str(evaluation))
    assert result.exit_code == 0, result.output
    assert_png(tmp_path / "evaluation_compare.png", (600, 420))
    leaderboard = tmp_path / "leaderboard.csv"
    leaderboard.write_text("rank,submission,team,framework,clean_top1,clean_top5,top1_clean,top1_noise,score,"
                           "partition,status\n1,a,t,torch,0.9,1,0.9,0.5,0.7,public,scored\n"
                           "2,b,t,tf,0.8,1,0.8,0.4,0.6,public,scored\n,c,t,tf,,,,,,public,failed\n")
    result = invoke("plot", "compare", str(leaderboard), "--out", str(tmp_path / "l.png"))
    assert result.exit_code == 0, result.output
    assert_png(tmp_path / "l.png", (600, 420))


def test_plot_bad_input_is_one_line_exit_2(tmp_path):
    result = invoke("plot", "curves", str(tmp_path / "missing.json"))
    assert result.exit_code == 2
    assert "missing.json: no such file" in result.output and len(result.output.strip().splitlines()) == 1
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    result = invoke("plot", "compare", str(tmp_path / "x.csv"))
    assert result.exit_code == 2 and "no 'submission' column" in result.output
    (tmp_path / "r.json").write_text("{}")
    result = invoke("plot", "robustness", str(tmp_path / "r.json"))
    assert result.exit_code == 2 and "not a robustness.json" in result.output


def test_saliency_maps_split_signs_on_one_scale():
    gradients = np.zeros((1, 2, 2, 3), np.float32)
    gradients[0, 0, 0] = [0.5, -0.1, 0.0]
    gradients[0, 1, 1] = [0.0, -1.0, 0.2]
    positive, negative = saliency_maps(gradients)
    np.testing.assert_allclose(positive[0], [[0.5, 0.0], [0.0, 0.2]])
    np.testing.assert_allclose(negative[0], [[0.1, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize("channels", [1, 3])
def test_explanation_grid_size(tmp_path, channels):
    rng = np.random.default_rng(0)
    versions = [Explanation(rng.random((3, 8, 8, channels), dtype=np.float32), np.tile(np.arange(5), (3, 1)),
                            np.full((3, 5), 0.2), rng.normal(size=(3, 8, 8, channels)), rng.random((3, 8, 8)))
                for _ in range(2)]
    path = plot_explanations(versions, [f"class {i}" for i in range(10)], tmp_path / "grid.png",
                             labels=np.array([0, 1, 2]), title="t", headings=("clean", "fgsm"))
    assert_png(path, (round(2 * len(PANELS) * CELL * DPI), round((HEADER + 3 * CELL) * DPI)))


class FakeRuntime:
    """``activations`` of a model whose channel c of layer l is the image's first channel times (c + 1) * (l + 1)
    (pooled 2x2 in layer 1), channel 2 negative: the strongest channels are known."""

    @staticmethod
    def activations(model, images, count=2):
        scale = np.array([1.0, 3.0, -2.0, 2.0], np.float32)
        first = images[..., :1] * scale
        second = first.reshape(len(images), 4, 2, 4, 2, 4).mean(axis=(2, 4)) * 2
        return [("conv_a", first), ("conv_b", second)][:count]


def test_layer_maps_keep_the_strongest_channels_of_the_clean_image_for_both_versions():
    rng = np.random.default_rng(1)
    clean, adversarial = rng.random((2, 8, 8, 3), dtype=np.float32), rng.random((2, 8, 8, 3), dtype=np.float32)
    maps = layer_maps(FakeRuntime, None, clean, adversarial, count=2, channels=3)
    assert [m.layer for m in maps] == ["conv_a", "conv_b"]
    assert maps[0].channels.tolist() == [[1, 3, 0], [1, 3, 0]]  # by mean activation: 3x, 2x, 1x (not -2x)
    assert maps[0].clean.shape == maps[0].adversarial.shape == (2, 8, 8, 3) and maps[1].clean.shape == (2, 4, 4, 3)
    np.testing.assert_allclose(maps[0].adversarial[1, ..., 0], adversarial[1, ..., 0] * 3.0, rtol=1e-6)


def test_activation_picture_size(tmp_path):
    rng = np.random.default_rng(2)
    clean, adversarial = rng.random((2, 8, 8, 1), dtype=np.float32), rng.random((2, 8, 8, 1), dtype=np.float32)
    maps = layer_maps(FakeRuntime, None, clean, adversarial, count=2, channels=4)
    maps[1].clean[0] = 0.0  # a constant channel pair still draws
    maps[1].adversarial[0] = 0.0
    path = plot_activations(clean, adversarial, maps, tmp_path / "maps.png", title="t", headings=("clean", "fgsm"))
    # per image and layer two rows (clean, adversarial); the image, then 4 channels
    assert_png(path, (round(5 * MAP_CELL * DPI), round((HEADER + 2 * 2 * 2 * MAP_CELL) * DPI)))


def matrix_store(db) -> None:
    """Two attacks x two defenses, one cell failed."""
    from harness.scoring.stats import pack_bits
    from harness.scoring.store import MatrixRecord, ResultStore

    with ResultStore(db) as store:
        for attack in ("fgsm", "sneaky"):
            for defense in ("strong", "weak"):
                adversarial = np.arange(20) % (3 if attack == "fgsm" else 5) == 0
                scored = (attack, defense) != ("fgsm", "weak")
                correct = {"clean": pack_bits(np.ones(20, bool)), "adversarial": pack_bits(adversarial)}
                values = {"count": 20, "clean_correct": 20, "fooled": int((~adversarial).sum()),
                          "success": float((~adversarial).mean())}
                store.add_matrix(MatrixRecord(
                    attack=attack, attack_kind="submission", attack_key=f"key-{attack}", defense=defense,
                    defense_team="t", defense_key=f"key-{defense}", split_hash="s" * 64, harness_version="0",
                    status="scored" if scored else "failed", reason="" if scored else "crashed: x",
                    metrics={p: values for p in ("public", "private")} if scored else {},
                    correct={p: correct for p in ("public", "private")} if scored else {}))


def test_plot_matrix_from_a_results_store(tmp_path):
    db = tmp_path / "results.sqlite"
    result = invoke("plot", "matrix", str(db))
    assert result.exit_code == 2 and "no such results store" in result.output and not db.exists()
    matrix_store(db)
    result = invoke("plot", "matrix", str(db), "--private", "--out", str(tmp_path / "m.png"))
    assert result.exit_code == 0, result.output
    assert_png(tmp_path / "m.png", (600, 300))  # 2 defenses x 2 attacks: the smallest figure
    assert invoke("plot", "matrix", str(db)).exit_code == 0 and (tmp_path / "matrix_public.png").is_file()
    assert invoke("plot", "matrix", str(db), "--split-hash", "nope").exit_code == 2
