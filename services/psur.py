"""The PSUR of one model over a period, from the event store (the API and the CLI both use this)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.models import oversight, performance
from services.store import reads
from vigil.corrective_actions import ACTION_EVENTS, fold_actions, started_within
from vigil.policy import Policy
from vigil.psur import Psur, VolumeOfUse, build_psur, psur_period, psur_years
from vigil.registry import UnknownModel


async def psur(engine: AsyncEngine, policy: Policy, model_id: str, year: str, now: datetime) -> Psur:
    async with engine.connect() as conn:
        model = (await reads.registry(conn, model_id, None)).get(model_id)
        if model is None:
            raise UnknownModel(f"no model {model_id!r} is registered")
        years = psur_years(model.registration.risk_class, policy.for_model(model_id).reporting.psur_years)
        period = psur_period(year, years)
        stored = reads.InPeriod(conn, period.start, period.end)
        inferences = sum(u.inferences for u in await stored.usage(model_id=model_id))
        by_deployment, by_country, mix = await stored.inference_mix(model_id)
        incidents = [i for i in await stored.incidents() if i.model_id == model_id]
        kinds = await stored.types_of(model_id)
        actions = fold_actions(await reads.of_type(conn, *ACTION_EVENTS, model_id=model_id)).values()
        head = await reads.head(conn)
    signals = {k: n for k, n in kinds.items() if k not in ("InferenceMade", "OutcomeObserved", "ReviewRecorded")}
    end = min(period.end, now)
    found = await performance(engine, policy, model_id, None, None, None, end, as_of=end)
    reviewed = await oversight(engine, policy, model_id, None, "deployment", period.days, end, until=end, as_of=end)
    volume = VolumeOfUse(inferences=inferences, by_deployment=by_deployment, by_country=by_country, subgroup_mix=mix)
    chain: dict[str, str | int] = {"head_seq": head.seq if head else 0, "head_hash": head.hash if head else ""}
    return build_psur(
        model, period, years, volume, incidents, started_within(actions, period.start, period.end),
        kinds.get("TrendDetected", 0), signals, found if found.rows else None, reviewed, chain, now,
    )  # fmt: skip
