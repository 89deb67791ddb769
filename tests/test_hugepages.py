"""The `fer-jax` command re-executes itself with glibc's huge-page tunable, and that tunable really
cuts the page faults of fresh memory (fer_jax/hugepages.py says why it matters to XLA:CPU)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from fer_jax import hugepages

TESTS = pathlib.Path(__file__).parent


def _run(code: str, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "FER_JAX_HUGEPAGES")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, cwd=TESTS, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


PLAIN = "import runpy; runpy.run_module('helpers.report_page_faults', run_name='__main__')"
# As the `fer-jax` command starts: re-executed when wanted, else it goes on in this process.
REEXEC = ("from fer_jax.hugepages import reexec_with_huge_pages; "
          "reexec_with_huge_pages('helpers.report_page_faults'); " + PLAIN)


@pytest.mark.skipif(not hugepages.wanted() and "GLIBC_TUNABLES" not in os.environ,
                    reason="this machine's kernel or libc offers no transparent huge pages")
def test_reexec_sets_the_tunable_and_fresh_memory_faults_512_times_less():
    plain, huge = _run(PLAIN), _run(REEXEC)
    assert huge["tunables"].endswith(hugepages.TUNABLE) and plain["tunables"] == ""
    # 256 MiB: 65,536 faults of 4 KiB pages; with 2 MiB pages about 128 (plus a few for the rest).
    assert plain["faults"] > 60_000 and huge["faults"] < plain["faults"] / 20, (plain, huge)


def test_opting_out_or_an_existing_setting_leaves_the_process_alone():
    assert _run(REEXEC, FER_JAX_HUGEPAGES="0")["tunables"] == ""
    assert _run(REEXEC, GLIBC_TUNABLES="glibc.malloc.hugetlb=0")["tunables"] == "glibc.malloc.hugetlb=0"
