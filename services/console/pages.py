"""The console's pages: parse the request, call the same services as the API, render a template.

Every command goes through the incident decider exactly as the API's do (`IncidentService`); a
refusal is shown in the decider's words on the page it came from. Every view of an incident is
recorded as `IncidentViewed`, as the API's reads are.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import AwareDatetime, BaseModel, ValidationError

from services.api.auth import Caller, caller_of
from services.api.incidents import CloseBody, DecisionBody, ReportBody, TriageBody, report_response, triage_command
from services.console.session import PEOPLE_ROLES, Session, Sessions, csrf_matches
from services.console.views import page
from services.guidelines import guideline_audit
from services.guidelines_view import cases_csv
from services.incidents import IncidentService, UnknownIncident
from services.model_card import SIGNALS, model_card
from services.registry import RegistryService
from services.rendering import model_card as card_rendering
from services.store import reads
from vigil.events import (
    Causality,
    DriftDetected,
    DriftResolved,
    Event,
    GuidelineChanged,
    Harm,
    IncidentCandidateRaised,
    RegimeName,
    ReportOverdue,
    ReportType,
)
from vigil.incidents import ALLOWED, Close, Command, DecideReportability, DomainError, SubmitReport
from vigil.incidents import Status as IncidentStatus
from vigil.regulatory import COUNTING_RULES
from vigil.reports.builders import ReportKind

routes = APIRouter(prefix="/console", include_in_schema=False)
OFFICER = ("safety_officer",)
# Who may read the guideline audit's case list with its pseudonymous patient tokens: the care team's
# contact. Auditors see the counts.
CASE_READERS = ("safety_officer",)
FEED_KINDS: tuple[type[Event], ...] = (*SIGNALS, DriftDetected, DriftResolved, ReportOverdue, IncidentCandidateRaised)
FEED_LIMIT = 300


class SignInNeeded(Exception):
    """No valid session: the page answers with the sign-in form."""


class Forbidden(Exception):
    def __init__(self, caller: Caller, what: str, roles: tuple[str, ...]) -> None:
        super().__init__(f"role {caller.role!r} may not {what}; needs one of {', '.join(roles)}")


def sessions(request: Request) -> Sessions:
    return request.app.state.console_sessions


def signed_in(request: Request) -> Session:
    session = sessions(request).read(request)
    if session is None:
        raise SignInNeeded()
    return session


SignedIn = Annotated[Session, Depends(signed_in)]


def allow(session: Session, what: str, *roles: str) -> None:
    if not session.caller.may(*roles):
        raise Forbidden(session.caller, what, roles)


def incidents_of(request: Request) -> IncidentService:
    return request.app.state.incidents


def registry_of(request: Request) -> RegistryService:
    return request.app.state.registry


async def _model_ids(request: Request) -> list[str]:
    """The registered models, for the filter forms."""
    return sorted(m.model_id for m in await registry_of(request).models(None))


def _safe_next(target: str | None) -> str:
    """Only a path of the console itself: a sign-in link must not send anyone elsewhere."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return "/console/"


# --- signing in and out ----------------------------------------------------------------------


@routes.get("/sign-in", response_class=HTMLResponse)
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    if sessions(request).read(request):
        return RedirectResponse(_safe_next(next), 303)
    return page(request, "sign_in.html", None, next=_safe_next(next))


@routes.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "") -> Response:
    caller = caller_of(request.app.state.settings.api_tokens, token.strip())
    if caller is None or not caller.may(*PEOPLE_ROLES):
        reason = (
            "this token is not known to Vigil"
            if caller is None
            else f"the role {caller.role!r} sends events and has no console; sign in as one of "
            + ", ".join(PEOPLE_ROLES)
        )
        return page(request, "sign_in.html", None, 401, error=reason, next=_safe_next(next))
    response = RedirectResponse(_safe_next(next), 303)
    sessions(request).open(response, request, caller)
    await request.app.state.audit.signed_in(caller.person, caller.role, datetime.now(UTC))
    return response


@routes.post("/sign-out")
async def sign_out(request: Request, session: SignedIn, csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(session, csrf)
    response = RedirectResponse("/console/sign-in", 303)
    Sessions.close(response)
    return response


class CsrfMismatch(Exception):
    pass


def check_csrf(session: Session, sent: str) -> None:
    if not csrf_matches(session, sent):
        raise CsrfMismatch()


# --- the incident inbox ----------------------------------------------------------------------


class InboxFilters(BaseModel):
    model: str = ""
    status: IncidentStatus | Literal[""] = ""
    regime: RegimeName | Literal[""] = ""


async def _inbox(request: Request, session: Session, chosen: tuple[InboxFilters, dict[str, str]]) -> dict[str, Any]:
    allow(session, "read incidents", "safety_officer", "auditor")
    filters, problems = chosen
    entries = await incidents_of(request).list(filters.status or None, filters.model or None, filters.regime or None)
    return {
        "entries": entries,
        "filters": filters,
        "problems": problems,
        "statuses": get_args(IncidentStatus),
        "regimes": get_args(RegimeName),
    }


def _filters(model: str = "", status: str = "", regime: str = "") -> tuple[InboxFilters, dict[str, str]]:
    """The inbox's filters, and a reason for each one that names nothing (it then filters nothing)."""
    sent = {"model": model, "status": status, "regime": regime}
    try:
        return InboxFilters.model_validate(sent), {}
    except ValidationError as invalid:
        wrong = {str(e["loc"][0]) for e in invalid.errors()}
        problems = {name: f"{sent[name]!r} is not a {name}; showing all" for name in wrong}
        return InboxFilters.model_validate({k: v for k, v in sent.items() if k not in wrong}), problems


Filters = Annotated[tuple[InboxFilters, dict[str, str]], Depends(_filters)]


@routes.get("/", response_class=HTMLResponse)
async def inbox(request: Request, session: SignedIn, filters: Filters) -> Response:
    found = await _inbox(request, session, filters)
    return page(request, "inbox.html", session, models=await _model_ids(request), **found)


@routes.get("/inbox/rows", response_class=HTMLResponse)
async def inbox_rows(request: Request, session: SignedIn, filters: Filters) -> Response:
    """The inbox's rows alone: the page fetches them every few seconds, so new candidates appear
    (without the filter form's lists, which the rows do not show)."""
    return page(request, "_inbox_rows.html", session, **await _inbox(request, session, filters))


# --- one incident ------------------------------------------------------------------------------


FORMS: dict[str, type[BaseModel]] = {
    "triage": TriageBody,
    "reportability": DecisionBody,
    "reports": ReportBody,
    "close": CloseBody,
}
COMMAND_OF = {"triage": "Triage", "reportability": "DecideReportability", "reports": "SubmitReport", "close": "Close"}
Action = Literal["triage", "reportability", "reports", "close"]


def _command(action: Action, body: BaseModel, caller: Caller) -> Command:
    if isinstance(body, TriageBody):
        return triage_command(body, caller)
    fields = {"by": caller.person, "role": caller.role, **body.model_dump()}
    kind: type[Command] = {"reportability": DecideReportability, "reports": SubmitReport, "close": Close}[action]
    return kind(**fields)


async def _incident_page(
    request: Request,
    session: Session,
    incident_id: UUID,
    as_of: datetime | None,
    status: int = 200,
    error: str | None = None,
    failed: str | None = None,
    problems: dict[str, str] | None = None,
    sent: dict[str, str] | None = None,
) -> HTMLResponse:
    """The incident as of a moment (now by default); after a refused or invalid command, with the
    decider's reason (`error`), each field's problem next to it (`problems`) and what was `sent`."""
    allow(session, "read incidents", "safety_officer", "auditor")
    service = incidents_of(request)
    now = datetime.now(UTC)
    state = await service.state(incident_id, as_of)
    await service.viewed(incident_id, session.caller.person, session.caller.role, as_of, now)
    return page(
        request,
        "incident.html",
        session,
        status,
        incident=state,
        as_of=as_of,
        error=error,
        failed=failed,
        problems=problems or {},
        sent=sent or {},
        may_act=session.caller.may(*OFFICER) and as_of is None,
        allowed={a for a, c in COMMAND_OF.items() if c in ALLOWED[state.status]},
        harms=get_args(Harm),
        causalities=get_args(Causality),
        regimes=get_args(RegimeName),
        report_types=get_args(ReportType),
        done=request.query_params.get("done"),
        counting_rules=COUNTING_RULES,
    )


def _as_of(value: str | None) -> datetime | None:
    """The page's *as of* control sends a local date and time without a zone: it is read as UTC."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@routes.get("/incidents/{incident_id}", response_class=HTMLResponse)
async def incident(
    request: Request, incident_id: UUID, session: SignedIn, as_of: Annotated[str | None, Query()] = None
) -> Response:
    try:
        moment = _as_of(as_of)
    except ValueError:
        problem = f"{as_of!r} is not a date and time (YYYY-MM-DDTHH:MM:SS, UTC)"
        return await _incident_page(
            request, session, incident_id, None, 422, f"as of: {problem}", "as_of", {"as_of": problem}
        )
    return await _incident_page(request, session, incident_id, moment)


@routes.post("/incidents/{incident_id}/{action}", response_class=HTMLResponse)
async def act(request: Request, incident_id: UUID, action: Action, session: SignedIn) -> Response:
    form = await request.form()
    check_csrf(session, str(form.get("csrf", "")))
    allow(session, "change incidents", *OFFICER)
    fields: dict[str, Any] = {k: v for k, v in form.items() if k != "csrf" and v != ""}
    if action == "triage":
        for flag in ("expected", "public_health_threat", "widespread_or_critical_infra", "remedial_action_needed"):
            fields[flag] = flag in form  # an unticked box is not sent at all
        for codes in ("device_problem_codes", "health_effect_codes"):  # typed as "A0601, A0701"
            fields[codes] = [c.strip() for c in str(form.get(codes, "")).split(",") if c.strip()]
    sent = {k: str(v) for k, v in form.items() if k != "csrf"}
    try:
        body = FORMS[action].model_validate(fields)
    except ValidationError as invalid:
        # A field's problem under the field's name; an item of a list (a code) is named in the message.
        problems = {
            str(e["loc"][0]) if e["loc"] else "form": e["msg"] + (f": {e['input']!r}" if len(e["loc"]) > 1 else "")
            for e in invalid.errors()
        }
        summary = "; ".join(f"{name}: {message}" for name, message in problems.items())
        return await _incident_page(request, session, incident_id, None, 422, summary, action, problems, sent)
    try:
        await incidents_of(request).execute(incident_id, _command(action, body, session.caller), datetime.now(UTC))
    except UnknownIncident:
        raise
    except DomainError as refused:
        return await _incident_page(request, session, incident_id, None, 409, str(refused), action, sent=sent)
    return RedirectResponse(f"/console/incidents/{incident_id}?done={action}", 303)


@routes.get("/incidents/{incident_id}/report")
async def report(
    request: Request,
    incident_id: UUID,
    session: SignedIn,
    format: Literal["mir", "fda-3500a"] = "mir",
    type: ReportKind = "initial",
    render: Literal["json", "pdf"] = "pdf",
) -> Response:
    allow(session, "read incidents", "safety_officer", "auditor")
    return await report_response(incidents_of(request), incident_id, format, type, render, session.caller)


# --- models, signals, guideline audits -----------------------------------------------------------


@routes.get("/models", response_class=HTMLResponse)
async def models(request: Request, session: SignedIn) -> Response:
    return page(request, "models.html", session, models=await registry_of(request).models(None))


async def _card(request: Request, model_id: str, version: str | None, as_of: datetime | None) -> Any:
    registry = registry_of(request)
    return await model_card(registry.engine, request.app.state.policy, model_id, version, as_of, datetime.now(UTC))


@routes.get("/models/{model_id}", response_class=HTMLResponse)
async def model(
    request: Request,
    model_id: str,
    session: SignedIn,
    version: str | None = None,
    as_of: AwareDatetime | None = None,
) -> Response:
    card = await _card(request, model_id, version, as_of)
    return page(
        request,
        "model.html",
        session,
        card=card,
        sections=card_rendering.sections(card),
        has_chart=card_rendering.chart(card, "svg") is not None,
        version=version,
    )


@routes.get("/models/{model_id}/chart.svg")
async def model_chart(request: Request, model_id: str, session: SignedIn, version: str | None = None) -> Response:
    svg = card_rendering.chart(await _card(request, model_id, version, None), "svg") or b""
    return Response(svg, media_type="image/svg+xml", status_code=200 if svg else 404)


@routes.get("/models/{model_id}/card")
async def model_card_file(
    request: Request, model_id: str, session: SignedIn, format: Literal["pdf", "md"] = "pdf", version: str | None = None
) -> Response:
    card = await _card(request, model_id, version, None)
    body = card_rendering.pdf(card) if format == "pdf" else card_rendering.markdown(card).encode()
    kind = "application/pdf" if format == "pdf" else "text/markdown; charset=utf-8"
    disposition = {"Content-Disposition": f'attachment; filename="{model_id}-card.{format}"'}
    return Response(body, media_type=kind, headers=disposition)


@routes.get("/signals", response_class=HTMLResponse)
async def signals(request: Request, session: SignedIn, model: str = "", kind: str = "", days: int = 90) -> Response:
    """Drift, thresholds, disparity, oversight, transparency, readers, sources, trends and overdue
    reports, the newest first."""
    kinds = [k for k in FEED_KINDS if not kind or reads.type_name(k) == kind]
    problems = {}
    if not kinds:
        problems["kind"] = f"{kind!r} is not a kind of signal; showing all"
        kinds, kind = list(FEED_KINDS), ""
    if not 1 <= days <= 3650:
        problems["days"] = f"{days} is outside 1 to 3650 days; showing {max(1, min(days, 3650))}"
        days = max(1, min(days, 3650))
    since = datetime.now(UTC) - timedelta(days=days)
    async with registry_of(request).engine.connect() as conn:
        found = await reads.of_type(conn, *kinds, model_id=model or None, recorded_since=since, newest=FEED_LIMIT)
    return page(
        request,
        "signals.html",
        session,
        feed=found[::-1],
        model=model,
        kind=kind,
        days=days,
        problems=problems,
        models=await _model_ids(request),
        kinds=sorted(reads.type_name(k) for k in FEED_KINDS),
        limit=FEED_LIMIT,
    )


@routes.get("/guidelines", response_class=HTMLResponse)
async def guidelines(request: Request, session: SignedIn) -> Response:
    allow(session, "read guideline audits", "safety_officer", "auditor")
    async with registry_of(request).engine.connect() as conn:
        changes = list(reversed(await reads.of_type(conn, GuidelineChanged)))
    return page(request, "guidelines.html", session, changes=changes)


@routes.get("/guidelines/{guideline_id}", response_class=HTMLResponse)
async def guideline(request: Request, guideline_id: str, session: SignedIn, lookback: int = 30) -> Response:
    allow(session, "read guideline audits", "safety_officer", "auditor")
    audit = await guideline_audit(registry_of(request).engine, guideline_id, max(1, min(lookback, 3650)))
    return page(
        request,
        "guideline.html",
        session,
        audit=audit,
        lookback=lookback,
        sees_cases=session.caller.may(*CASE_READERS),
    )


@routes.get("/guidelines/{guideline_id}/cases.csv")
async def guideline_cases(request: Request, guideline_id: str, session: SignedIn, lookback: int = 30) -> Response:
    allow(session, "read the cases' patient tokens", *CASE_READERS)
    audit = await guideline_audit(registry_of(request).engine, guideline_id, max(1, min(lookback, 3650)))
    disposition = {"Content-Disposition": f'attachment; filename="{guideline_id}-cases.csv"'}
    return Response(cases_csv(audit.cases), media_type="text/csv; charset=utf-8", headers=disposition)
