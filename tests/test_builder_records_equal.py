"""Every builder, now one Beam pipeline on `data_builders.base`, makes from its dummy data the same
records as the process-pool builders before it: the same keys in the same splits, each record's
arrays equal bit for bit (tests/builder_record_digests.json, written by that implementation with
tests/helpers/record_digests.py).

The default run builds two corpora that cover the base's two paths (CK+: image sequences through the
preprocessing; FER2013 raw48: frames stored as given), ~40 s on a busy 2-core machine; the other
nine are marked slow (all eleven: ~2m40s with a load average of 7-9 on 2 cores)."""

from __future__ import annotations

import json

import pytest

from helpers import record_digests

STORED = json.loads(record_digests.DIGESTS.read_text())
FAST = {"ck_plus/gray64_t8", "fer2013/raw48"}


def test_every_corpus_has_stored_digests():
    assert set(STORED) == set(record_digests.CORPORA)


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in sorted(record_digests.CORPORA)]
)
def test_records_equal_the_process_pool_builders(name, tmp_path):
    built = record_digests.build_digests(name, tmp_path)
    stored = STORED[name]
    assert sorted(built) == sorted(stored), "split names differ"
    for split in stored:
        assert sorted(built[split]) == sorted(stored[split]), f"{split}: clip keys differ"
        changed = sorted(key for key in stored[split] if built[split][key] != stored[split][key])
        assert not changed, f"{split}: records differ for {changed}"
