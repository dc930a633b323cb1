"""Model routes: a drift reference, a calibration reference, subgroup performance and its estimate, human
oversight, readers; the guideline audit."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from services import models as use_cases
from services.api.auth import Caller, require
from services.guidelines import guideline_audit
from services.models import ModelService
from vigil.guidelines import GuidelineAudit
from vigil.oversight import ModelOversightReport
from vigil.performance import ModelPerformance, attributes_of
from vigil.readers import ModelReaders

routes = APIRouter(prefix="/v1/models", tags=["models"])
guideline_routes = APIRouter(prefix="/v1/guidelines", tags=["models"])
PARQUET_TYPES = {"application/vnd.apache.parquet", "application/x-parquet", "application/octet-stream"}


class ProfiledFeature(BaseModel):
    feature: str
    kind: str
    n: int
    missing: int


class ReferenceSet(BaseModel):
    event_id: str
    model_id: str
    model_version: str
    features: list[ProfiledFeature]


def service(request: Request) -> ModelService:
    return request.app.state.models


async def table_of(request: Request) -> tuple[bytes, str, pd.DataFrame]:
    """The request's body, its content type and the table it holds (CSV or Parquet)."""
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    try:
        if content_type in PARQUET_TYPES:
            return body, content_type, pd.read_parquet(io.BytesIO(body))
        if content_type == "text/csv":
            return body, content_type, pd.read_csv(io.BytesIO(body))
    except (ValueError, OSError) as error:  # pandas' and pyarrow's parse errors are ValueErrors or OSErrors
        raise HTTPException(422, f"the {content_type} body could not be read: {error}") from None
    raise HTTPException(415, f"send text/csv or application/vnd.apache.parquet, not {content_type or 'nothing'}")


@routes.put(
    "/{model_id}/versions/{version}/drift-reference",
    response_model=ReferenceSet,
    summary="Set the drift reference of a model version from a CSV (text/csv) or Parquet body",
    responses={422: {"description": "unreadable file, no rows, infinite values, too many columns, unknown model"}},
)
async def set_reference(
    model_id: str,
    version: str,
    request: Request,
    models: Annotated[ModelService, Depends(service)],
    _: Annotated[Caller, Depends(require("emitter"))],
) -> ReferenceSet:
    content_type, frame = (await table_of(request))[1:]
    event = await models.set_reference(
        request.app.state.policy, model_id, version, frame, f"api-upload-{content_type}", datetime.now(UTC)
    )
    return ReferenceSet(
        event_id=str(event.event_id),
        model_id=model_id,
        model_version=version,
        features=[ProfiledFeature(feature=p.feature, kind=p.kind, n=p.n, missing=p.missing) for p in event.profiles],
    )


def window_days(window: str) -> int | None:
    """'30d' -> 30; 'all' -> None (since release)."""
    if window == "all":
        return None
    if window.endswith("d") and window[:-1].isdigit() and int(window[:-1]) > 0:
        return int(window[:-1])
    raise HTTPException(422, f"window must be like '30d' or 'all', not {window!r}")


@routes.get(
    "/{model_id}/performance",
    response_model=ModelPerformance,
    summary="Subgroup performance with 95% intervals and the policy's verdict per row",
    description="Every recorded outcome joined to its inference. `by` names the subgroup attributes "
    "(their intersection when several); rows for everyone are always included.",
    responses={404: {"description": "unknown model"}, 422: {"description": "bad window or attributes"}},
)
async def performance(
    model_id: str,
    request: Request,
    models: Annotated[ModelService, Depends(service)],
    _: Annotated[Caller, Depends(require("safety_officer", "auditor"))],
    by: Annotated[str, Query(description="comma-separated attributes, e.g. sex,age_band")] = "",
    window: Annotated[str, Query(description="'30d' (rolling days) or 'all' (since release)")] = "30d",
    version: Annotated[str | None, Query(description="one model version; all versions when absent")] = None,
) -> ModelPerformance:
    attributes = attributes_of(by)
    if len(attributes) > 3:
        raise HTTPException(422, f"at most 3 attributes in `by`, got {len(attributes)}")
    return await use_cases.performance(
        models.engine, request.app.state.policy, model_id, version, attributes, window_days(window), datetime.now(UTC)
    )


@routes.get(
    "/{model_id}/performance/estimate",
    response_model=use_cases.ModelEstimate,
    summary="ESTIMATED performance of outputs still waiting for their outcome (CBPE), and how far off it has been",
    description="Per version and critical label: scores calibrated on the version's first outcomes (isotonic; "
    "refused with the reason when the held-out expected calibration error passes the policy's limit), the "
    "expected sensitivity, specificity, PPV and NPV of the window's pending outputs per chunk with a parametric "
    "bootstrap interval, and a backtest of the estimate against outcomes that came later. Never a realised figure.",
    responses={404: {"description": "unknown model"}, 422: {"description": "bad window"}},
)
async def performance_estimate(
    model_id: str,
    request: Request,
    models: Annotated[ModelService, Depends(service)],
    _: Annotated[Caller, Depends(require("safety_officer", "auditor"))],
    window: Annotated[str, Query(description="'30d' (rolling days) or 'all' (since release)")] = "30d",
    version: Annotated[str | None, Query(description="one model version; each version when absent")] = None,
) -> use_cases.ModelEstimate:
    return await use_cases.performance_estimate(
        models.engine, request.app.state.policy, model_id, version, window_days(window), datetime.now(UTC)
    )


class CalibrationSet(BaseModel):
    event_id: str
    model_id: str
    model_version: str
    label: str
    reference_size: int
    calibration_ece: float
    points: int = Field(description="points of the fitted isotonic map")


@routes.put(
    "/{model_id}/versions/{version}/calibration-reference",
    response_model=CalibrationSet,
    summary="Calibrate a model version's estimated performance (CBPE) on a file of scores with known outcomes",
    description="A CSV (text/csv) or Parquet body with `score` (the probability of `label`) and `truth` (the "
    "outcome) per row. The isotonic fit is recorded as a `CalibrationReferenceSet` event and replaces the "
    "version's first outcomes as its reference; a file whose held-out calibration error passes the policy's "
    "limit is refused with the reason.",
    responses={404: {"description": "unknown model"}, 415: {"description": "neither CSV nor Parquet"},
               422: {"description": "unreadable file, missing columns, not a critical label, poorly calibrated"}},
)  # fmt: skip
async def set_calibration_reference(
    model_id: str,
    version: str,
    request: Request,
    models: Annotated[ModelService, Depends(service)],
    _: Annotated[Caller, Depends(require("emitter"))],
    label: Annotated[str, Query(description="the critical label whose probability `score` is")],
) -> CalibrationSet:
    body, content_type, frame = await table_of(request)
    event = await models.set_calibration_reference(
        request.app.state.policy, model_id, version, label, body, frame, f"api-upload-{content_type}",
        datetime.now(UTC),
    )  # fmt: skip
    return CalibrationSet(
        event_id=str(event.event_id), model_id=model_id, model_version=version, label=label,
        reference_size=event.reference_size, calibration_ece=event.calibration_ece, points=len(event.scores),
    )  # fmt: skip


@routes.get(
    "/{model_id}/readers",
    response_model=ModelReaders,
    summary="The model alone against the clinician with it: paired sensitivity, McNemar, automation bias",
    description="Every reviewed output whose review carries the clinician's final label and whose outcome is "
    "known: per critical label and each attribute of `by` (default: the policy's attributes), the model's and "
    "the clinician's sensitivity and specificity, the exact McNemar p of their difference, the share of wrong "
    "suggestions accepted and of right ones changed.",
    responses={404: {"description": "unknown model"}, 422: {"description": "bad window or attributes"}},
)
async def readers(
    model_id: str,
    request: Request,
    models: Annotated[ModelService, Depends(service)],
    _: Annotated[Caller, Depends(require("safety_officer", "auditor"))],
    by: Annotated[str, Query(description="comma-separated attributes, each on its own")] = "",
    window: Annotated[str, Query(description="'30d' (rolling days) or 'all' (since release)")] = "all",
    version: Annotated[str | None, Query(description="one model version; all versions when absent")] = None,
) -> ModelReaders:
    return await use_cases.readers(
        models.engine, request.app.state.policy, model_id, version, attributes_of(by) or None, window_days(window),
        datetime.now(UTC),
    )  # fmt: skip


@routes.get(
    "/{model_id}/oversight",
    response_model=ModelOversightReport,
    summary="Human oversight: outputs reviewed in time, acted on before review, autonomous, overridden",
    description="Every recorded inference of the window with its first recorded review, for everyone and "
    "each group of `by` (`deployment` or a subgroup attribute), with 95% intervals and the policy's findings.",
    responses={404: {"description": "unknown model"}, 422: {"description": "bad window or attribute"}},
)
async def oversight(
    model_id: str,
    request: Request,
    models: Annotated[ModelService, Depends(service)],
    _: Annotated[Caller, Depends(require("safety_officer", "auditor"))],
    by: Annotated[str, Query(description="one attribute: deployment, site, sex, ...")] = "",
    window: Annotated[str, Query(description="'7d' (rolling days) or 'all' (since release)")] = "7d",
    version: Annotated[str | None, Query(description="one model version; all versions when absent")] = None,
) -> ModelOversightReport:
    if len(attributes := attributes_of(by)) > 1:
        raise HTTPException(422, f"oversight is grouped by one attribute at a time, got {', '.join(attributes)}")
    return await use_cases.oversight(
        models.engine, request.app.state.policy, model_id, version, by.strip() or None, window_days(window),
        datetime.now(UTC),
    )  # fmt: skip


@guideline_routes.get(
    "/{guideline_id}/audit",
    response_model=GuidelineAudit,
    summary="Recommendations to re-review after a guideline change, per affected model",
    description="For every registered model whose use case the latest GuidelineChanged of this id names: the "
    "recommendations made in the lookback before it took effect that have no outcome yet, and those made since "
    "by a version released before it. `cases` lists each with its pseudonymous patient token for the care team.",
    responses={404: {"description": "unknown guideline"}, 422: {"description": "bad lookback"}},
)
async def audit_guideline(
    guideline_id: str,
    models: Annotated[ModelService, Depends(service)],
    _: Annotated[Caller, Depends(require("safety_officer", "auditor"))],
    lookback: Annotated[str, Query(description="days before the change to look back, e.g. '30d'")] = "30d",
) -> GuidelineAudit:
    days = window_days(lookback)
    if days is None:
        raise HTTPException(422, "lookback must be like '30d'")
    return await guideline_audit(models.engine, guideline_id, days)
