"""HTTP API: ingest events into Kafka; later, queries, incidents and exports.

Bearer tokens map to roles (`VIGIL_API_TOKENS`). Every payload passes the same gate as the worker
(`vigil.validation.parse`), so a client learns at once what was wrong and where.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from aiokafka import AIOKafkaProducer
from fastapi import Depends, FastAPI, HTTPException, Request
from prometheus_client import make_asgi_app
from pydantic import BaseModel

from services.api.audit import routes as audit_routes
from services.api.auth import Caller, require
from services.api.corrective_actions import routes as corrective_action_routes
from services.api.errors import install_error_handlers
from services.api.incidents import routes as incident_routes
from services.api.models import guideline_routes
from services.api.models import routes as model_routes
from services.api.otlp import routes as otlp_routes
from services.api.registry import routes as registry_routes
from services.audit import AuditService
from services.console import install as install_console
from services.corrective_actions import CorrectiveActionService
from services.incidents import IncidentService
from services.models import ModelService
from services.publish import publish
from services.registry import RegistryService
from vigil.events import EVENT_TYPES, INPUT_EVENTS
from vigil.policy import load_policy
from vigil.validation import MAX_EVENT_BYTES, Rejected, loads, parse
from vigil_runtime.database import engine_for
from vigil_runtime.settings import Settings, get_settings

log = structlog.get_logger("api")
MAX_BATCH = 1000
MAX_BODY_BYTES = MAX_EVENT_BYTES * 16


class Accepted(BaseModel):
    accepted: int
    event_ids: list[str]


def _event_schema() -> dict[str, Any]:
    """Documents the body; the body itself is read raw so that errors come from the one shared gate."""
    one = {"oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in INPUT_EVENTS]}
    return {"oneOf": [one, {"type": "array", "items": one, "maxItems": MAX_BATCH}]}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=10_000,
        )
        await producer.start()
        engine = engine_for(settings)
        app.state.producer = producer
        app.state.incidents = IncidentService(settings, engine, producer)
        app.state.models = ModelService(settings, engine, producer)
        app.state.registry = RegistryService(settings, engine, producer)
        app.state.corrective_actions = CorrectiveActionService(settings, engine, producer)
        app.state.audit = AuditService(settings, engine, producer)
        try:
            yield
        finally:
            await producer.stop()
            await engine.dispose()

    app = FastAPI(
        title="Vigil",
        version="1",
        summary="Post-market surveillance for clinical AI models",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.policy = load_policy(settings.policy_file)
    app.mount("/metrics", make_asgi_app())
    app.include_router(incident_routes)
    app.include_router(registry_routes)
    app.include_router(corrective_action_routes)
    app.include_router(audit_routes)
    app.include_router(otlp_routes)
    app.include_router(model_routes)
    app.include_router(guideline_routes)
    install_console(app, settings)
    install_error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=Accepted,
        summary="Ingest one event or a batch (a JSON array) of up to 1000",
        description="All-or-nothing: if any event in a batch is invalid, none is accepted and the 422 "
        "response lists each problem with its index, field path and reason.",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _event_schema()}}}},
        responses={422: {"description": "invalid events: [{index, path, reason}]"}},
    )
    async def ingest(request: Request, _: Annotated[Caller, Depends(require("emitter"))]) -> Accepted:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise HTTPException(413, f"request body of {len(raw)} bytes exceeds {MAX_BODY_BYTES} bytes")
        try:
            body = loads(raw, MAX_BODY_BYTES)
        except Rejected as rejected:
            raise HTTPException(422, [{"index": None, "path": None, "reason": rejected.reason}]) from None
        items = body if isinstance(body, list) else [body]
        if len(items) > MAX_BATCH:
            raise HTTPException(413, f"a batch holds at most {MAX_BATCH} events, got {len(items)}")
        events, problems = [], []
        now = datetime.now(UTC)
        for index, item in enumerate(items):
            try:
                events.append(parse(item, sent_at=now, skew=settings.max_clock_skew, accepted=INPUT_EVENTS))
            except Rejected as rejected:
                problems.append({"index": index, "path": rejected.path, "reason": rejected.reason})
        if problems:
            raise HTTPException(422, problems)
        await publish(request.app.state.producer, settings, events)
        return Accepted(accepted=len(events), event_ids=[str(e.event_id) for e in events])

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, cls in EVENT_TYPES.items():
            definition = cls.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(definition.pop("$defs", {}))
            components[name] = definition
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
