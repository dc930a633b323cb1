"""The worker's allocator: jemalloc in a process started with `with_jemalloc` where the system has
it, glibc's bounded where the C library is glibc, and nothing breaks elsewhere."""

from __future__ import annotations

import ctypes.util
import os
import platform
import subprocess
import sys

from vigil_runtime.allocator import set_up_allocator, with_jemalloc

REPORT = "from vigil_runtime.allocator import set_up_allocator; print(set_up_allocator())"


def test_a_process_started_without_jemalloc_bounds_glibc_where_the_c_library_is_glibc() -> None:
    assert set_up_allocator() == ("glibc" if platform.libc_ver()[0] == "glibc" else "other")


def test_a_process_started_with_jemalloc_runs_on_it_where_the_system_has_it() -> None:
    env = with_jemalloc({k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")})
    found = subprocess.run([sys.executable, "-c", REPORT], env=env, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == ("jemalloc" if ctypes.util.find_library("jemalloc") else set_up_allocator())


def test_a_preload_already_set_is_left_as_it_is() -> None:
    assert with_jemalloc({"LD_PRELOAD": "libother.so"}) == {"LD_PRELOAD": "libother.so"}
