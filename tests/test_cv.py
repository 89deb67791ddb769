"""Cross-validation: one run per fold, each on its own splits, and a mean/std table."""

import dataclasses
import json

import numpy as np
import pytest

from fer_jax.config import ExperimentConfig, leave_one_fold_out
from fer_jax.errors import ConfigError
from fer_jax.train.cv import format_cv_table, run_cross_validation


def test_leave_one_fold_out_holds_out_each_fold_once():
    runs = leave_one_fold_out(["fold0", "fold1", "fold2"])
    assert runs == (("fold0", "fold1+fold2", "fold0"), ("fold1", "fold0+fold2", "fold1"), ("fold2", "fold0+fold1", "fold2"))


def test_cv_trains_each_fold_and_summarises(tmp_path):
    seen = []

    def fake_train(config):  # stands in for train(): records what each fold was given
        seen.append((config.workdir, config.data.train_split, config.data.val_split))
        acc = {"fold0": 0.5, "fold1": 0.7, "fold2": 0.9}[config.data.val_split]
        return {"val_accuracy": acc, "val_uar": acc - 0.1, "num_train_clips": 10, "num_val_clips": 5}, None

    config = ExperimentConfig(workdir=str(tmp_path))
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, cv_runs=leave_one_fold_out(["fold0", "fold1", "fold2"])))
    summary = run_cross_validation(config, train_fn=fake_train)
    assert [s[1:] for s in seen] == [("fold1+fold2", "fold0"), ("fold0+fold2", "fold1"), ("fold0+fold1", "fold2")]
    assert seen[0][0] == str(tmp_path / "fold0")
    assert summary["val_accuracy_mean"] == pytest.approx(0.7)
    assert summary["val_accuracy_std"] == pytest.approx(np.std([0.5, 0.7, 0.9], ddof=1))
    assert json.loads((tmp_path / "cv_results.json").read_text())["val_uar_mean"] == pytest.approx(0.6)
    table = format_cv_table(summary)
    assert "fold2" in table and "0.7000" in table


def test_cv_without_runs_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cv_runs"):
        run_cross_validation(ExperimentConfig(workdir=str(tmp_path)))
