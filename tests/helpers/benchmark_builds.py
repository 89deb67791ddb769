"""What the tests of the DFEW, MAFW and FERV39k builders share: their module's two command-line builds
of the dummy corpus, and the skipped files of a build report in a comparable form."""

from __future__ import annotations

import pathlib

import pytest

from helpers.builds import background_builds, finished_build, relative


def build_fixtures(name: str, dummy: pathlib.Path, tfds_config: str):
    """(builds, built) module fixtures: `fer-jax build NAME` and `tfds build --config tfds_config`
    of `dummy`, started in the background by the first test that asks; `built` is (data dir,
    finished `fer-jax build`, its build_report.json)."""

    @pytest.fixture(scope="module")
    def builds(tmp_path_factory):
        yield from background_builds(tmp_path_factory, name, dummy, tfds_config)

    @pytest.fixture(scope="module")
    def built(builds):
        return finished_build(builds["fer_jax"], name)

    return builds, built


def skips(report: dict) -> set[tuple[str, str, str]]:
    """{(path relative to the repository, reason, split)} of a report's skipped files."""
    return {(relative(s["path"]), s["reason"], s["split"]) for s in report["skipped_files"]}


def tfds_data_dir(builds) -> str:
    """The data dir of the module's `tfds build`, once it has finished with exit status 0."""
    done = builds["tfds"].result()
    assert done.returncode == 0, done.stderr[-3000:]
    return done.args[done.args.index("--data_dir") + 1]
