"""`VIGIL_RECORDER_SHARE`: which partitions a recorder of several records."""

import pytest
from pydantic import ValidationError

from vigil_runtime.settings import Settings


@pytest.mark.parametrize(("share", "partitions"), [("1/1", (0, 1)), ("1/2", (0, 2)), ("2/2", (1, 2)), ("3/8", (2, 8))])
def test_a_share_names_the_partitions_whose_number_mod_n_is_k_minus_1(share: str, partitions: tuple) -> None:
    assert Settings(recorder_share=share).recorder_partitions == partitions


@pytest.mark.parametrize("share", ["0/2", "3/2", "2", "a/b", "1/0", "-1/2"])
def test_a_share_that_is_not_k_of_n_is_refused_with_the_form_expected(share: str) -> None:
    with pytest.raises(ValidationError, match="is not k/n"):
        Settings(recorder_share=share)
