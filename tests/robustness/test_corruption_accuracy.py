"""corruption_accuracy: the 15 x 5 table, its CSV, held-out corruptions, mCE against a baseline."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from harness.errors import UsageError
from harness.robustness import CORRUPTIONS, HOLDOUT_CORRUPTIONS, corruption_accuracy, load_corruption_errors, mce
from harness.robustness.corruption import corruption_errors, resolve_corruptions


@pytest.fixture(scope="module")
def digits():
    from harness.data import load_dataset

    ds = load_dataset("digits")
    train, test = ds.split("train"), ds.split("test")
    centroids = np.stack([np.asarray(train.images)[np.asarray(train.labels) == k].mean(axis=0) for k in range(10)])
    return np.array(test.images[:40]), np.array(test.labels[:40]), centroids


def nearest_centroid(centroids):
    """A numpy classifier: minus the distance to each class mean, as logits."""
    flat = centroids.reshape(len(centroids), -1).astype(np.float64)

    def predict(images):
        x = images.reshape(len(images), -1).astype(np.float64)
        return -((x[:, None, :] - flat[None]) ** 2).sum(axis=2)

    return predict


def test_benchmark_table_csv_and_means(digits, tmp_path):
    images, labels, centroids = digits
    result = corruption_accuracy(nearest_centroid(centroids), images, labels, seed=0, csv_path=tmp_path / "c.csv")
    assert [(r["corruption"], r["severity"]) for r in result.rows] == [(c, s) for c in CORRUPTIONS
                                                                      for s in range(1, 6)]
    assert result.mean_accuracy() == pytest.approx(np.mean([r["accuracy"] for r in result.rows]))
    assert result.mean_accuracy("holdout") is None and result.mce is None
    assert 0.5 < result.clean_accuracy <= 1.0
    with open(tmp_path / "c.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 75 and set(rows[0]) == {"corruption", "group", "severity", "accuracy", "error", "count"}
    assert {r["group"] for r in rows} == {"benchmark"}
    assert result.to_dict()["mean_accuracy"] == result.mean_accuracy()
    # labels-only predictions work too
    again = corruption_accuracy(lambda x: nearest_centroid(centroids)(x).argmax(1), images, labels,
                                corruptions=["fog"], severities=[5], seed=0)
    assert again.accuracy("fog", 5) == result.accuracy("fog", 5)


def test_cells_do_not_depend_on_which_others_run(digits):
    images, labels, centroids = digits
    predict = nearest_centroid(centroids)
    both = corruption_accuracy(predict, images, labels, ["gaussian-noise", "snow"], [2, 4], seed=3)
    alone = corruption_accuracy(predict, images, labels, ["corruption/snow"], [4], seed=3)
    assert alone.accuracy("snow", 4) == both.accuracy("snow", 4)
    other_seed = corruption_accuracy(predict, images, labels, ["snow"], [4], seed=4)
    assert other_seed.rows[0]["corruption"] == "snow"


def test_holdout_group_is_kept_apart(digits):
    images, labels, centroids = digits
    result = corruption_accuracy(nearest_centroid(centroids), images, labels, "all", [3], seed=0)
    groups = {r["corruption"]: r["group"] for r in result.rows}
    assert [n for n, g in groups.items() if g == "holdout"] == list(HOLDOUT_CORRUPTIONS)
    assert result.mean_accuracy("holdout") is not None and result.mean_accuracy("benchmark") is not None
    assert resolve_corruptions("holdout") == HOLDOUT_CORRUPTIONS


def test_mce_relative_to_a_baseline(digits, tmp_path):
    images, labels, centroids = digits
    names = ["gaussian-noise", "contrast"]
    base = corruption_accuracy(nearest_centroid(centroids), images, labels, names, seed=0,
                               csv_path=tmp_path / "baseline.csv")
    same = corruption_accuracy(nearest_centroid(centroids), images, labels, names, seed=0,
                               baseline=tmp_path / "baseline.csv")
    assert same.mce == pytest.approx(1.0) and same.baseline == "baseline"
    # Hendrycks' definition: per corruption, summed errors over severities divided by the baseline's
    errors = {"fog": {1: 0.2, 2: 0.4}, "saturate": {1: 0.5}}
    baseline = {"fog": {1: 0.4, 2: 0.4}, "saturate": {1: 0.25}}
    assert corruption_errors(errors, baseline) == {"fog": pytest.approx(0.75), "saturate": pytest.approx(2.0)}
    assert mce(errors, baseline) == pytest.approx(0.75)  # held-out corruptions stay out of mCE
    loaded = load_corruption_errors(tmp_path / "baseline.csv")
    assert loaded.keys() == base.errors().keys()
    for name, by_severity in base.errors().items():
        assert loaded[name] == pytest.approx(by_severity)


def test_bad_input(digits):
    images, labels, centroids = digits
    with pytest.raises(UsageError, match="Unknown corruption 'fgo'. Did you mean 'fog'"):
        corruption_accuracy(nearest_centroid(centroids), images, labels, ["fgo"])
    with pytest.raises(UsageError, match="labels"):
        corruption_accuracy(nearest_centroid(centroids), images, labels[:3])
    with pytest.raises(UsageError, match="not found"):
        load_corruption_errors("/nonexistent/baseline.csv")


def test_streamed_cells_equal_the_whole_array_at_once(digits, monkeypatch):
    from harness.chunks import ENV
    from harness.data import load_dataset

    _, _, centroids = digits
    test = load_dataset("digits").split("test")  # 269 memory-mapped images: two chunks of at most 256
    predict, sizes = nearest_centroid(centroids), []

    def counting(images):
        sizes.append(len(images))
        return predict(images)

    names, severities = ("snow", "motion-blur", "gaussian-noise"), (2,)
    monkeypatch.setenv(ENV, "256")
    streamed = corruption_accuracy(counting, test.images, test.labels, names, severities, seed=3)
    assert max(sizes) == 256 and len(sizes) == 2 * (len(names) + 1)  # every cell and clean: chunk by chunk
    monkeypatch.setenv(ENV, "1024")
    whole = corruption_accuracy(predict, test.images, test.labels, names, severities, seed=3)
    assert streamed.rows == whole.rows and streamed.clean_accuracy == whole.clean_accuracy
    seed = int(np.random.SeedSequence([3, 7, 2]).generate_state(1)[0])  # snow's cell (two draws), by hand
    from harness.robustness.corruption import create_corruption

    corrupt = create_corruption("snow", 2)
    corrupted = corrupt(np.asarray(test.images), generator=np.random.default_rng(seed))
    by_hand = float(np.mean(predict(corrupted).argmax(axis=1) == np.asarray(test.labels)))
    assert streamed.accuracy("snow", 2) == by_hand
