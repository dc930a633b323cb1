from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from vigil.slices import slices


@given(st.lists(st.integers(min_value=0, max_value=50)), st.integers(min_value=1, max_value=60))
def test_slices_keep_every_item_in_order_within_the_bound(sizes: list[int], most: int) -> None:
    runs = list(slices(sizes, lambda size: size, most))
    assert [size for run in runs for size in run] == sizes
    assert all(run for run in runs)
    assert all(sum(run) <= most or len(run) == 1 for run in runs)
    # A run ends only where the next item would have passed the bound.
    assert all(sum(run) + after[0] > most for run, after in pairwise(runs))
