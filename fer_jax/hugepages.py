"""Transparent huge pages for the `fer-jax` command's own memory, set before anything allocates.

Why: XLA:CPU allocates each step's intermediates afresh and frees them after, and glibc serves
blocks that large with a new mmap each time, so every step first touches hundreds of MB of new
4 KiB pages: one page fault per 4 KiB. glibc (2.35 and newer) can ask the kernel for 2 MiB pages for
such blocks instead (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, used where the kernel's THP mode is
`madvise` or `always`), 512 times fewer faults. Measured on this project's 2-core CPU machine: the
demo's training 49.6 s -> 39.9 s, the paper-size 3D-CNN + ConvLSTM step about 25% faster.

glibc reads its tunables once, when the process starts, so the command re-executes itself once
with the tunable set; set FER_JAX_HUGEPAGES=0 to keep the process as it is. A library user sets
GLIBC_TUNABLES themselves (docs/speed.md).
"""

from __future__ import annotations

import os
import pathlib
import platform
import sys

TUNABLE = "glibc.malloc.hugetlb=1"
_THP_MODE = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")


def wanted() -> bool:
    """True where this process could use huge pages for malloc but does not yet."""
    if os.environ.get("FER_JAX_HUGEPAGES", "1") == "0" or "glibc.malloc.hugetlb" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        return "[never]" not in _THP_MODE.read_text()
    except OSError:
        return False


def reexec_with_huge_pages(module: str) -> None:
    """Replace this process by `python -m module ARGS` with the tunable set, when `wanted()`;
    otherwise return and let the caller go on."""
    if not wanted():
        return
    tunables = ":".join(filter(None, [os.environ.get("GLIBC_TUNABLES", ""), TUNABLE]))
    env = {**os.environ, "GLIBC_TUNABLES": tunables}
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], env)
