"""Incident routes: report, triage, decide reportability, submit reports, close, read (as of), reports."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import AwareDatetime, BaseModel, Field, RootModel, ValidationError

from services.api.auth import Caller, require
from services.incidents import InboxEntry, IncidentService
from services.rendering.incident_pdf import render_pdf
from vigil.events import (
    Causality,
    CountryCode,
    DeviceProblemCode,
    Harm,
    HealthEffectCode,
    IncidentReported,
    LongText,
    RegimeName,
    ReportType,
    Text,
)
from vigil.incidents import Close, Command, DecideReportability, Incident, SubmitReport, Triage
from vigil.reports.builders import Fda3500aReport, MirReport, ReportKind

routes = APIRouter(prefix="/v1/incidents", tags=["incidents"])

Officer = Annotated[Caller, Depends(require("safety_officer"))]
Reader = Annotated[Caller, Depends(require("safety_officer", "auditor"))]
Reporter = Annotated[Caller, Depends(require("safety_officer", "emitter"))]


class NewIncident(BaseModel):
    model_id: Text
    model_version: Text
    harm: Harm
    description: LongText
    country: CountryCode
    aware_at: AwareDatetime
    inference_ids: list[UUID] = []
    public_health_threat: bool = False
    reporter_role: Text | None = None
    incident_date: date | None = None


class TriageBody(BaseModel):
    harm: Harm
    causality: Causality
    expected: bool
    rationale: LongText
    public_health_threat: bool = False
    widespread_or_critical_infra: bool = False
    remedial_action_needed: bool = False
    device_problem_codes: list[DeviceProblemCode] = Field([], max_length=20, description="IMDRF Annex A, e.g. A0601")
    health_effect_codes: list[HealthEffectCode] = Field([], max_length=20, description="IMDRF Annexes E, F")


class DecisionBody(BaseModel):
    reportable: bool
    rationale: LongText


class ReportBody(BaseModel):
    regime: RegimeName
    report_type: ReportType
    reference: Text


class CloseBody(BaseModel):
    rationale: LongText


def service(request: Request) -> IncidentService:
    return request.app.state.incidents


Service = Annotated[IncidentService, Depends(service)]


async def _run(incidents: IncidentService, incident_id: UUID, command: Command) -> Incident:
    return await incidents.execute(incident_id, command, datetime.now(UTC))


@routes.post("", status_code=201, response_model=Incident, summary="Report an incident (deployer or safety officer)")
async def report_incident(request: Request, body: NewIncident, caller: Reporter, incidents: Service) -> Incident:
    now = datetime.now(UTC)
    try:
        event = IncidentReported(
            event_id=uuid4(),
            occurred_at=now,
            incident_id=uuid4(),
            reporter_role=body.reporter_role or caller.role,
            counting=request.app.state.policy.for_model(body.model_id).reporting.counting,
            **body.model_dump(exclude={"reporter_role"}),
        )
    except ValidationError as error:
        raise HTTPException(422, error.errors(include_url=False)) from None
    return await incidents.report(event, now)


@routes.post("/{incident_id}/triage", response_model=Incident, summary="Triage: harm, causality, expectedness")
async def triage(incident_id: UUID, body: TriageBody, caller: Officer, incidents: Service) -> Incident:
    return await _run(incidents, incident_id, triage_command(body, caller))


def triage_command(body: TriageBody, caller: Caller) -> Triage:
    fields = body.model_dump(exclude={"device_problem_codes", "health_effect_codes"})
    return Triage(
        by=caller.person,
        role=caller.role,
        device_problem_codes=tuple(body.device_problem_codes),
        health_effect_codes=tuple(body.health_effect_codes),
        **fields,
    )


@routes.post(
    "/{incident_id}/reportability",
    response_model=Incident,
    summary="Decide whether the incident is reportable, and start its clocks",
)
async def reportability(incident_id: UUID, body: DecisionBody, caller: Officer, incidents: Service) -> Incident:
    command = DecideReportability(by=caller.person, role=caller.role, **body.model_dump())
    return await _run(incidents, incident_id, command)


@routes.post("/{incident_id}/reports", response_model=Incident, summary="Record a report submitted to a regulator")
async def submit(incident_id: UUID, body: ReportBody, caller: Officer, incidents: Service) -> Incident:
    return await _run(incidents, incident_id, SubmitReport(by=caller.person, role=caller.role, **body.model_dump()))


@routes.post("/{incident_id}/close", response_model=Incident, summary="Close the incident")
async def close(incident_id: UUID, body: CloseBody, caller: Officer, incidents: Service) -> Incident:
    return await _run(incidents, incident_id, Close(by=caller.person, role=caller.role, **body.model_dump()))


@routes.get("", response_model=list[InboxEntry], summary="Incidents, the most urgent first")
async def list_incidents(_: Reader, incidents: Service, status: str | None = None) -> list[InboxEntry]:
    return await incidents.list(status)


@routes.get("/{incident_id}", response_model=Incident, summary="An incident, now or as Vigil knew it at `as_of`")
async def read(incident_id: UUID, caller: Reader, incidents: Service, as_of: AwareDatetime | None = None) -> Incident:
    state = await incidents.state(incident_id, as_of)
    await incidents.viewed(incident_id, caller.person, caller.role, as_of, datetime.now(UTC))
    return state


class ReportDocument(RootModel[MirReport | Fda3500aReport]):
    """The report as JSON (`render=json`): an EU MIR or an FDA 3500A-aligned report."""


@routes.get(
    "/{incident_id}/report",
    summary="An EU MIR or FDA 3500A-aligned report, as JSON or PDF",
    response_model=None,
    responses={200: {"model": ReportDocument, "content": {"application/pdf": {}}}},
)
async def report(
    incident_id: UUID,
    caller: Reader,
    incidents: Service,
    format: Literal["mir", "fda-3500a"] = "mir",
    type: ReportKind = "initial",
    render: Literal["json", "pdf"] = "json",
) -> Response:
    return await report_response(incidents, incident_id, format, type, render, caller)


async def report_response(
    incidents: IncidentService,
    incident_id: UUID,
    format: Literal["mir", "fda-3500a"],
    type: ReportKind,
    render: Literal["json", "pdf"],
    caller: Caller,
) -> Response:
    """The report as a download (the API's and the console's): preparing it is recorded as a view."""
    built = await incidents.report_for_regulator(
        incident_id, format, type, caller.person, caller.role, datetime.now(UTC)
    )
    filename = f"{format}-{incident_id}.{render}"
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if render == "pdf":
        return Response(render_pdf(built, str(incident_id)), media_type="application/pdf", headers=disposition)
    return Response(built.model_dump_json(), media_type="application/json", headers=disposition)
