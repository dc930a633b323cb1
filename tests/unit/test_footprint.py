"""The footprint counts measured energy only and says how much of it was measured."""

from __future__ import annotations

import pytest

from vigil.footprint import footprint
from vigil.policy import Policy


def test_energy_and_carbon_from_what_was_reported() -> None:
    f = footprint(inferences=4, reported=2, energy_wh=1600.0, tokens_in=10, tokens_out=20, grid_g_co2e_per_kwh=250)
    assert f.energy_reported_share == 0.5 and f.energy_kwh == pytest.approx(1.6)
    assert f.co2e_kg == pytest.approx(1.6 * 250 / 1000) and f.wh_per_inference == 800
    none = footprint(inferences=0, reported=0, energy_wh=0.0, tokens_in=0, tokens_out=0, grid_g_co2e_per_kwh=250)
    assert none.energy_reported_share is None and none.wh_per_inference is None and none.co2e_kg == 0


def test_the_grid_intensity_is_set_per_model() -> None:
    policy = Policy({"models": {"mammo-screen": {"footprint": {"grid_g_co2e_per_kwh": 380}}}})
    assert policy.for_model("mammo-screen").footprint.grid_g_co2e_per_kwh == 380
    assert policy.for_model("other").footprint.grid_g_co2e_per_kwh == 250
