"""The worker's allocator settings take where the C library is glibc, and nothing breaks elsewhere."""

from __future__ import annotations

import platform

from vigil_runtime.allocator import bound_allocator


def test_the_allocator_is_bounded_exactly_where_the_c_library_is_glibc() -> None:
    assert bound_allocator() is (platform.libc_ver()[0] == "glibc")
