"""Model routes: upload a drift reference."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from services.api.auth import Caller, require
from services.models import ModelService

routes = APIRouter(prefix="/v1/models", tags=["models"])
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
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    try:
        if content_type in PARQUET_TYPES:
            frame = pd.read_parquet(io.BytesIO(body))
        elif content_type == "text/csv":
            frame = pd.read_csv(io.BytesIO(body))
        else:
            raise HTTPException(
                415, f"send text/csv or application/vnd.apache.parquet, not {content_type or 'nothing'}"
            )
    except (ValueError, OSError) as error:  # pandas' and pyarrow's parse errors are ValueErrors or OSErrors
        raise HTTPException(422, f"the {content_type} body could not be read: {error}") from None
    event = await models.set_reference(
        request.app.state.policy, model_id, version, frame, f"api-upload-{content_type}", datetime.now(UTC)
    )
    return ReferenceSet(
        event_id=str(event.event_id),
        model_id=model_id,
        model_version=version,
        features=[ProfiledFeature(feature=p.feature, kind=p.kind, n=p.n, missing=p.missing) for p in event.profiles],
    )
