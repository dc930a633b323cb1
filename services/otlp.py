"""OTLP trace ingest: OpenTelemetry GenAI spans become `InferenceMade` events.

Model teams that already instrument their LLM services with OpenTelemetry (OpenLLMetry,
OpenInference, the GenAI semantic conventions) export spans over OTLP/HTTP to `POST /v1/traces`.
Vigil implements the GenAI semantic conventions at version SEMCONV (still Development status) and
reads the older attribute names that instrumentations still emit by default (`gen_ai.system` for
`gen_ai.provider.name`). What the conventions do not carry comes from `vigil.*` attributes on the
span or its resource (span wins). Message content (`gen_ai.input.messages`,
`gen_ai.output.messages`) is never stored: only its length.

A span that is not a GenAI span is ignored. A GenAI span that cannot become a valid event, or whose
attributes carry a direct identifier (the PHI guard reads every attribute), is refused with its
reason: counted in OTLP's partial success and dead-lettered.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from vigil.events import INPUT_EVENTS, InferenceMade
from vigil.phi import find_phi
from vigil.validation import MAX_EVENT_BYTES, Rejected, parse

SEMCONV = "1.37.0"
NAMESPACE = uuid.UUID("9a4c2e7b-1f3d-4b8a-8e6c-2d5f7a9b1c03")
MAX_BODY_BYTES = MAX_EVENT_BYTES * 64
CONTENT = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.prompt",
           "gen_ai.completion")  # fmt: skip
GENAI_MARKERS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system")


class BadRequest(ValueError):
    """A body that is no OTLP request at all: answered 400 with the reason, as OTLP/HTTP asks."""


@dataclass(frozen=True)
class Refused:
    span: str  # trace and span id, hex
    reason: Rejected
    raw: bytes  # the span as OTLP JSON, for the dead letter

    @property
    def position(self) -> int:
        """Where its dead letter says it came from: the span id as a (63-bit) number, so that each
        refused span has a dead letter of its own and a span sent twice has one."""
        return int(self.span.split("/")[1] or "0", 16) & (2**63 - 1)


def decode(body: bytes, content_type: str, content_encoding: str) -> ExportTraceServiceRequest:
    """An OTLP/HTTP body (protobuf or JSON, plain or gzip) as a request, or BadRequest."""
    if content_encoding.strip().lower() == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as error:
            raise BadRequest(f"Content-Encoding gzip, but the body is not gzip: {error}") from None
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(f"the body inflates past {MAX_BODY_BYTES} bytes")
    request = ExportTraceServiceRequest()
    kind = content_type.split(";")[0].strip().lower()
    try:
        if kind == "application/x-protobuf":
            request.ParseFromString(body)
        elif kind == "application/json":
            json_format.ParseDict(_hex_ids_as_base64(json.loads(body)), request)
        else:
            raise BadRequest(f"Content-Type must be application/x-protobuf or application/json, not {kind!r}")
    except (DecodeError, json_format.ParseError, ValueError, TypeError) as error:
        if isinstance(error, BadRequest):
            raise
        raise BadRequest(f"not an OTLP ExportTraceServiceRequest: {error}") from None
    return request


def from_record(value: bytes | None) -> ExportTraceServiceRequest:
    """What an OpenTelemetry Collector's `kafka` exporter writes to its topic: one
    ExportTraceServiceRequest per record, as protobuf (`encoding: otlp_proto`, its default) or
    JSON (`otlp_json`). Protobuf's first byte is a field tag, never `{`."""
    body = value or b""
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"a record of {len(body)} bytes exceeds {MAX_BODY_BYTES} bytes")
    as_json = body.lstrip()[:1] == b"{"
    return decode(body, "application/json" if as_json else "application/x-protobuf", "")


def _hex_ids_as_base64(value: Any) -> Any:
    """OTLP/JSON writes trace and span ids in hex where protobuf's JSON mapping expects base64."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(item, str) and item:
                try:
                    item = base64.b64encode(bytes.fromhex(item)).decode()
                except ValueError:
                    raise BadRequest(f"{key} {item!r} is not hex") from None
            out[key] = _hex_ids_as_base64(item)
        return out
    if isinstance(value, list):
        return [_hex_ids_as_base64(item) for item in value]
    return value


def response(refused: list[Refused], as_json: bool) -> bytes:
    """OTLP's answer: empty when every span was taken, else the partial success with the reasons."""
    answer = ExportTraceServiceResponse()
    if refused:
        answer.partial_success.rejected_spans = len(refused)
        reasons = [f"span {r.span}: {r.reason}" for r in refused[:5]]
        more = f" (+{len(refused) - 5} more)" if len(refused) > 5 else ""
        answer.partial_success.error_message = "; ".join(reasons) + more
    if as_json:
        return json_format.MessageToJson(answer).encode()
    return bytes(answer.SerializeToString())


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return binascii.hexlify(value.bytes_value).decode()
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


def _length(content: Any) -> int:
    """Characters of message content, however it is structured: a string, a list of messages, or
    (as span attributes carry them) such a list written as a JSON string."""
    if isinstance(content, str):
        if content[:1] in ("[", "{"):
            try:
                return _length(json.loads(content))
            except ValueError:
                pass  # text that happens to start with a bracket
        return len(content)
    if isinstance(content, list):
        return sum(_length(item) for item in content)
    if isinstance(content, dict):
        return sum(_length(v) for k, v in content.items() if k in ("content", "parts", "text"))
    return 0


def _utc(nanos: int) -> str:
    return datetime.fromtimestamp(nanos / 1e9, UTC).isoformat()


def inference_of(span: Span, attrs: dict[str, Any], event_id: uuid.UUID) -> dict[str, Any]:
    """The InferenceMade a GenAI span describes, as an event body (the gate checks it)."""
    vigil = {k.removeprefix("vigil."): v for k, v in attrs.items() if k.startswith("vigil.")}
    reasons = attrs.get("gen_ai.response.finish_reasons") or []
    output: dict[str, Any] = {"label": vigil.get("output.label"), "score": vigil.get("output.score"),
                              "refusal": "content_filter" in reasons}  # fmt: skip
    if "gen_ai.output.messages" in attrs or "gen_ai.completion" in attrs:
        output["text_length"] = _length(attrs.get("gen_ai.output.messages", attrs.get("gen_ai.completion")))
    features: dict[str, Any] = {k.removeprefix("feature."): v for k, v in vigil.items() if k.startswith("feature.")}
    if "gen_ai.input.messages" in attrs or "gen_ai.prompt" in attrs:
        features["input_length"] = _length(attrs.get("gen_ai.input.messages", attrs.get("gen_ai.prompt")))
    if "error.type" in attrs:
        features["error_type"] = str(attrs["error.type"])
    if reasons:
        features["finish_reason"] = str(reasons[0])
    facing = {k.removeprefix("patient_facing."): v for k, v in vigil.items() if k.startswith("patient_facing.")}
    body: dict[str, Any] = {
        "event_type": "InferenceMade",
        "event_id": str(event_id),
        "occurred_at": _utc(span.start_time_unix_nano),
        "model_id": vigil.get("model_id"),
        "model_version": vigil.get("model_version")
        or attrs.get("gen_ai.response.model")
        or attrs.get("gen_ai.request.model"),
        "deployment": vigil.get("deployment") or attrs.get("service.name"),
        "country": vigil.get("country"),
        "use_case": vigil.get("use_case") or attrs.get("gen_ai.operation.name"),
        "patient_ref": vigil.get("patient_ref"),
        "subgroup": {k.removeprefix("subgroup."): str(v) for k, v in vigil.items() if k.startswith("subgroup.")},
        "features": features,
        "output": output,
        "output_kind": vigil.get("output_kind", "suggestion"),
        "explanation_present": bool(vigil.get("explanation_present", False)),
        "consent_recorded": bool(vigil.get("consent_recorded", False)),
        "resources": {
            "latency_ms": max(0, span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
            "tokens_in": attrs.get("gen_ai.usage.input_tokens"),
            "tokens_out": attrs.get("gen_ai.usage.output_tokens"),
            "energy_wh": vigil.get("energy_wh"),
        },
    }
    if facing:
        body["patient_facing"] = facing
    return body


def inferences(request: ExportTraceServiceRequest, sent_at: datetime) -> tuple[list[InferenceMade], list[Refused]]:
    """The request's GenAI spans as events, and the ones refused with their reasons."""
    taken: list[InferenceMade] = []
    refused: list[Refused] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attrs = {**resource, **_attributes(span.attributes)}
                if not any(marker in attrs for marker in GENAI_MARKERS):
                    continue  # not a GenAI span: nothing Vigil watches
                ids = f"{span.trace_id.hex()}/{span.span_id.hex()}"
                event_id = uuid.uuid5(NAMESPACE, ids)  # a span exported twice is one event
                try:
                    # The PHI guard reads every attribute (message content is dropped, not stored).
                    kept = {k: v for k, v in attrs.items() if k not in CONTENT}
                    if finding := find_phi({"event_type": "OtlpSpan", "attributes": kept}):
                        raise Rejected(finding.reason, "phi", finding.path)
                    body = inference_of(span, attrs, event_id)
                    event = parse(body, sent_at=sent_at, accepted=INPUT_EVENTS)
                    assert isinstance(event, InferenceMade)
                    taken.append(event)
                except Rejected as why:
                    raw = b"" if why.kind == "phi" else json_format.MessageToJson(span).encode()
                    refused.append(Refused(ids, why, raw))
    return taken, refused
