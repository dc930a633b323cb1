"""The carbon footprint of a model's inferences (WHO asks that it be reported), from the energy
the deployed models report per inference (`resources.energy_wh`) and the grid's carbon intensity.

Only measured energy counts: an inference that reports none adds nothing, and the share that
reported is stated beside the total, so an estimate is never passed off as a measurement."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Footprint(BaseModel):
    inferences: int
    energy_reported_share: float | None = Field(description="share of the inferences that reported their energy")
    energy_kwh: float
    grid_g_co2e_per_kwh: float
    co2e_kg: float
    wh_per_inference: float | None = Field(description="over the inferences that reported their energy")
    tokens_in: int
    tokens_out: int


def footprint(
    inferences: int, reported: int, energy_wh: float, tokens_in: int, tokens_out: int, grid_g_co2e_per_kwh: float
) -> Footprint:
    energy_kwh = energy_wh / 1000
    return Footprint(
        inferences=inferences,
        energy_reported_share=reported / inferences if inferences else None,
        energy_kwh=energy_kwh,
        grid_g_co2e_per_kwh=grid_g_co2e_per_kwh,
        co2e_kg=energy_kwh * grid_g_co2e_per_kwh / 1000,
        wh_per_inference=energy_wh / reported if reported else None,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
    )
