"""`python -m helpers.report_page_faults`: prints GLIBC_TUNABLES and the page faults of touching
256 MiB that glibc's malloc hands out (as XLA:CPU's buffers come), as JSON (for tests/test_hugepages.py).
NumPy is no use here: it asks for huge pages for its own large arrays already."""

import ctypes
import json
import os
import resource

SIZE = 256 * 2**20
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = libc.malloc(SIZE)
ctypes.memset(block, 1, SIZE)  # touches every page
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"tunables": os.environ.get("GLIBC_TUNABLES", ""), "faults": faults}))
