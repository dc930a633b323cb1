"""Model registry routes: register a model, release a version, retire it, list and read models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, TypeVar
from uuid import uuid4

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from services.api.auth import Caller, require
from services.model_card import model_card
from services.psur import psur
from services.registry import RegistryService
from services.rendering import model_card as rendering
from services.rendering.psur_pdf import render_psur_pdf
from vigil.events import (
    CountryCode,
    Event,
    Label,
    LongText,
    ModelRegistered,
    ModelRetired,
    ModelVersionReleased,
    RiskClass,
    Text,
    TrainingData,
)
from vigil.model_card import LiveModelCard
from vigil.psur import Psur
from vigil.registry import ModelRecord

E = TypeVar("E", bound=Event)
routes = APIRouter(prefix="/v1/models", tags=["registry"])

Registrar = Annotated[Caller, Depends(require("safety_officer", "emitter"))]
Officer = Annotated[Caller, Depends(require("safety_officer"))]
Reader = Annotated[Caller, Depends(require("safety_officer", "auditor", "emitter"))]


class NewModel(BaseModel):
    model_id: Text
    name: Text = Field(description="the model's product name")
    manufacturer: Text
    use_case: Text
    risk_class: RiskClass
    intended_use: LongText = Field(description="what the model is for, and for whom")
    out_of_scope_uses: list[Text] = []
    patient_facing: bool = False
    labels: list[Label] = Field(default=[], description="the model's label set")
    critical_labels: list[Label] = Field(default=[], description="within the label set; judged by sensitivity")
    countries: list[CountryCode] = []


class NewVersion(BaseModel):
    model_version: Text
    released_at: AwareDatetime | None = Field(default=None, description="default: now")
    changes: LongText = ""
    training_data_summary: LongText = ""
    training_data: TrainingData | None = None
    validation_summary: LongText = ""
    limitations: list[Text] = []


class Retirement(BaseModel):
    reason: LongText
    retired_at: AwareDatetime | None = Field(default=None, description="default: now")
    replaced_by: Text | None = None


def service(request: Request) -> RegistryService:
    return request.app.state.registry


Service = Annotated[RegistryService, Depends(service)]


def _event(kind: type[E], **fields: object) -> E:
    """The event the command records; a value its schema refuses is a 422 naming the field."""
    try:
        return kind(event_id=uuid4(), occurred_at=datetime.now(UTC), **fields)
    except ValidationError as error:
        raise HTTPException(422, error.errors(include_url=False)) from None


@routes.post(
    "",
    status_code=201,
    response_model=ModelRecord,
    summary="Register a model: its intended use, risk class, label set and critical labels",
    responses={409: {"description": "registered already"}, 422: {"description": "e.g. critical labels outside"}},
)
async def register(body: NewModel, _: Registrar, registry: Service) -> ModelRecord:
    event = _event(ModelRegistered, **body.model_dump())
    return await registry.register(event)


@routes.post(
    "/{model_id}/versions",
    status_code=201,
    response_model=ModelRecord,
    summary="Release a version: what changed, what it was trained and validated on, its limitations",
    responses={404: {"description": "unknown model"}, 409: {"description": "released already, or model retired"}},
)
async def release(model_id: str, body: NewVersion, _: Registrar, registry: Service) -> ModelRecord:
    fields = body.model_dump(exclude={"released_at", "training_data"})
    event = _event(ModelVersionReleased, model_id=model_id, released_at=body.released_at or datetime.now(UTC),
                   training_data=body.training_data, **fields)  # fmt: skip
    return await registry.release(event)


@routes.post(
    "/{model_id}/retire",
    response_model=ModelRecord,
    summary="Retire a model: its later inferences are refused, its record is kept",
    responses={404: {"description": "unknown model"}, 409: {"description": "retired already"}},
)
async def retire(model_id: str, body: Retirement, _: Officer, registry: Service) -> ModelRecord:
    now = datetime.now(UTC)
    event = _event(ModelRetired, model_id=model_id, retired_at=body.retired_at or now, reason=body.reason,
                   replaced_by=body.replaced_by)  # fmt: skip
    return await registry.retire(event, now)


@routes.get("", response_model=list[ModelRecord], summary="Every registered model, as now or as of a moment")
async def list_models(_: Reader, registry: Service, as_of: AwareDatetime | None = None) -> list[ModelRecord]:
    return await registry.models(as_of)


@routes.get(
    "/{model_id}",
    response_model=ModelRecord,
    summary="A model's registration, version history and retirement",
    responses={404: {"description": "unknown model"}},
)
async def read(model_id: str, _: Reader, registry: Service, as_of: AwareDatetime | None = None) -> ModelRecord:
    return await registry.model(model_id, as_of)


CARD_TYPES = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8", "pdf": "application/pdf"}


@routes.get(
    "/{model_id}/card",
    response_model=None,
    summary="The live model card: registry, post-market performance, drift, oversight, incidents, versions",
    description="Mitchell et al.'s sections filled from the registry and the event store; `as_of` gives the card "
    "as Vigil could have written it then. `format`: json (default), md, html or pdf.",
    responses={200: {"model": LiveModelCard, "content": {t: {} for t in CARD_TYPES.values()}},
               404: {"description": "unknown model"}, 422: {"description": "unknown version or format"}},
)  # fmt: skip
async def card(
    model_id: str,
    request: Request,
    _: Reader,
    version: Annotated[str | None, Query(description="a released version; default: the current one")] = None,
    as_of: AwareDatetime | None = None,
    format: Annotated[str, Query(description="json, md, html or pdf")] = "json",
) -> LiveModelCard | Response:
    if format not in ("json", *CARD_TYPES):
        raise HTTPException(422, f"format must be one of json, {', '.join(CARD_TYPES)}; not {format!r}")
    registry: RegistryService = request.app.state.registry
    found = await model_card(registry.engine, request.app.state.policy, model_id, version, as_of, datetime.now(UTC))
    if format == "json":
        return found
    body = rendering.pdf(found) if format == "pdf" else rendering.RENDER[format](found).encode()
    return Response(body, media_type=CARD_TYPES[format])


@routes.get(
    "/{model_id}/psur",
    response_model=None,
    summary="The model's periodic safety update report (MDR Art. 86, MDCG 2022-21 Annex I), as JSON or PDF",
    description="`period`: the last calendar year it covers (e.g. 2026); it covers one year for high-risk models "
    "and two otherwise, unless the policy's `reporting.psur_years` says.",
    responses={200: {"model": Psur, "content": {"application/pdf": {}}}, 404: {"description": "unknown model"},
               422: {"description": "a period that is not a year"}},
)  # fmt: skip
async def periodic_safety_update_report(
    model_id: str,
    request: Request,
    _: Annotated[Caller, Depends(require("safety_officer", "auditor"))],
    period: Annotated[str, Query(description="the period's last calendar year, e.g. 2026")],
    format: Annotated[str, Query(description="json or pdf")] = "json",
) -> Psur | Response:
    if format not in ("json", "pdf"):
        raise HTTPException(422, f"format must be json or pdf; not {format!r}")
    registry: RegistryService = request.app.state.registry
    found = await psur(registry.engine, request.app.state.policy, model_id, period, datetime.now(UTC))
    if format == "pdf":
        return Response(render_psur_pdf(found), media_type="application/pdf")
    return found
