"""API Gateway HTTP API, as the deployment harness emulates it: routes from the translated
template's OpenAPI body, route matching, payload 2.0 events, response mapping and limits.

Pure functions and small classes, no I/O: the unit tests drive them directly.

Decisions where AWS's behaviour is not documented (README, "The deployment on one machine"):
- Trailing slash: API Gateway drops a route's trailing slash on import (SAM's own transform
  notes it: "APIGW doesn't like trailing slashes in paths ... and removes [them]"), and an HTTP
  API routes `/p` and `/p/` alike. So a route and a request path are compared without their
  trailing slash; `rawPath` keeps what the client sent.
- Request bodies are base64-encoded unless the Content-Type is `text/*`, `application/json`,
  `application/xml` or `application/javascript` (parameters ignored) and the bytes are UTF-8;
  a missing Content-Type is binary. (Observed on AWS by others: ministack PR #766.)
- Path parameters are percent-decoded after the path is split on `/` (an encoded slash stays
  inside its parameter).
- Every failure of the Lambda invocation (function error, crash, the function's own timeout,
  a malformed response, a request or response over Lambda's 6 MB) is HTTP API's
  `500 {"message":"Internal Server Error"}`; API Gateway's own 30 s integration timeout is
  `503 {"message":"Service Unavailable"}`; a body over 10 MB is
  `413 {"message":"Request Entity Too Large"}`; no route is `404 {"message":"Not Found"}`.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import unquote, unquote_to_bytes

# Limits (bytes, seconds).
API_MAX_REQUEST_BYTES = 10 * 1024 * 1024  # HTTP API payload quota: 10 MB
LAMBDA_MAX_PAYLOAD_BYTES = 6291556  # Lambda's synchronous invocation payload, request and response
API_TIMEOUT_SECONDS = 30.0  # HTTP API's maximum integration timeout

ANY_METHOD = "ANY"
DEFAULT_ROUTE = "$default"

TEXT_TYPES = ("application/json", "application/xml", "application/javascript")


def gateway_error(status: int) -> tuple[int, dict[str, str], bytes]:
    """HTTP API's own answers: status, headers, body."""
    message = {
        404: "Not Found",
        413: "Request Entity Too Large",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }[status]
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return status, {"content-type": "application/json"}, body


class TemplateError(Exception):
    """The template asks for something the harness cannot serve as AWS would."""


@dataclass
class Route:
    method: str  # upper case, or ANY
    path: str  # as declared in the OpenAPI body, e.g. /v2/{name1}/{name2}/blobs/uploads/
    function: str  # logical id of the AWS::Lambda::Function
    payload_version: str = "2.0"
    timeout_ms: int | None = None  # integration timeoutInMillis, if set
    segments: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.segments = split_path(self.path) if self.path != DEFAULT_ROUTE else ()

    @property
    def key(self) -> str:
        """The routeKey API Gateway puts in the event."""
        if self.path == DEFAULT_ROUTE:
            return DEFAULT_ROUTE
        return f"{self.method} {normalise(self.path)}"

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """Path parameters (raw, still percent-encoded) if the path matches, else None."""
        params: dict[str, str] = {}
        for i, pattern in enumerate(self.segments):
            if pattern.startswith("{") and pattern.endswith("+}"):
                rest = segments[i:]
                if not rest or rest == [""]:
                    return None
                params[pattern[1:-2]] = "/".join(rest)
                return params
            if i >= len(segments):
                return None
            seg = segments[i]
            if pattern.startswith("{") and pattern.endswith("}"):
                if seg == "":
                    return None
                params[pattern[1:-1]] = seg
            elif pattern != seg:
                return None
        if len(segments) != len(self.segments):
            return None
        return params

    def specificity(self) -> tuple:
        """Sort key: literal segments before parameters, parameters before greedy, at each
        position from the left; then longer paths; exact methods before ANY."""
        ranks = []
        for s in self.segments:
            if s.startswith("{") and s.endswith("+}"):
                ranks.append(2)
            elif s.startswith("{"):
                ranks.append(1)
            else:
                ranks.append(0)
        return (tuple(ranks), -len(self.segments), self.method == ANY_METHOD)


def normalise(path: str) -> str:
    """A path without its trailing slash (`/` stays `/`)."""
    if len(path) > 1 and path.endswith("/"):
        return path.rstrip("/") or "/"
    return path


def split_path(path: str) -> tuple[str, ...]:
    p = normalise(path)
    if p == "/":
        return ()
    return tuple(p.lstrip("/").split("/"))


def _sub_function_ref(uri: Any) -> str | None:
    """The function logical id an integration URI names (`${X.Arn}` in an Fn::Sub, or a
    GetAtt), else None."""
    if isinstance(uri, dict):
        if "Fn::Sub" in uri:
            text = uri["Fn::Sub"]
            if isinstance(text, list):
                text = text[0]
            m = re.search(r"\$\{([A-Za-z0-9]+)\.Arn\}", text)
            if m:
                return m.group(1)
        if "Fn::GetAtt" in uri:
            target = uri["Fn::GetAtt"]
            if isinstance(target, str):
                target = target.split(".", 1)
            return target[0]
    return None


def routes_from_template(translated: dict[str, Any]) -> list[Route]:
    """Every route of every AWS::ApiGatewayV2::Api with an OpenAPI Body."""
    resources = translated.get("Resources") or {}
    routes: list[Route] = []
    apis = [
        (lid, r)
        for lid, r in resources.items()
        if isinstance(r, dict) and r.get("Type") == "AWS::ApiGatewayV2::Api"
    ]
    if len(apis) != 1:
        raise TemplateError(f"expected one AWS::ApiGatewayV2::Api, found {[a for a, _ in apis]}")
    api_id, api = apis[0]
    body = (api.get("Properties") or {}).get("Body")
    if not isinstance(body, dict):
        raise TemplateError(f"{api_id} has no OpenAPI Body (BodyS3Location is not emulated)")
    for path, methods in (body.get("paths") or {}).items():
        for method, op in (methods or {}).items():
            if not isinstance(op, dict):
                continue
            integration = op.get("x-amazon-apigateway-integration")
            if not integration:
                continue
            if integration.get("type", "").lower() != "aws_proxy":
                raise TemplateError(f"{method.upper()} {path}: integration type {integration.get('type')!r} is not emulated")
            function = _sub_function_ref(integration.get("uri"))
            if function is None:
                raise TemplateError(f"{method.upper()} {path}: integration uri {integration.get('uri')!r} names no function")
            if function not in resources or resources[function].get("Type") != "AWS::Lambda::Function":
                raise TemplateError(f"{method.upper()} {path}: {function} is not an AWS::Lambda::Function of the template")
            m = "ANY" if method.lower() == "x-amazon-apigateway-any-method" else method.upper()
            routes.append(
                Route(
                    method=m,
                    path=path if path != "/$default" else DEFAULT_ROUTE,
                    function=function,
                    payload_version=str(integration.get("payloadFormatVersion", "1.0")),
                    timeout_ms=integration.get("timeoutInMillis"),
                )
            )
    for r in routes:
        if r.payload_version != "2.0":
            raise TemplateError(f"{r.key}: payload format {r.payload_version} is not emulated (2.0 only)")
    return routes


class Router:
    def __init__(self, routes: Iterable[Route]):
        self.routes = sorted(routes, key=lambda r: r.specificity())
        self.default = [r for r in self.routes if r.path == DEFAULT_ROUTE]

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        """The route and its decoded path parameters, or None (API Gateway's 404)."""
        segments = list(split_path(raw_path)) if raw_path.startswith("/") else None
        if segments is not None:
            for route in self.routes:
                if route.path == DEFAULT_ROUTE:
                    continue
                if route.method not in (method.upper(), ANY_METHOD):
                    continue
                params = route.match(segments)
                if params is not None:
                    return route, {k: unquote(v) for k, v in params.items()}
        for route in self.default:
            return route, {}
        return None


def is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime.startswith("text/") or mime in TEXT_TYPES


def encode_body(body: bytes, content_type: str | None) -> tuple[str, bool]:
    """The event's body and isBase64Encoded for these bytes."""
    if is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _query_parameters(raw_query: str) -> dict[str, str] | None:
    if not raw_query:
        return None
    out: dict[str, list[str]] = {}
    for part in raw_query.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        k = unquote(k.replace("+", " "))
        v = unquote(v.replace("+", " "))
        out.setdefault(k, []).append(v)
    return {k: ",".join(v) for k, v in out.items()} or None


def build_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: list[tuple[str, str]],
    body: bytes | None,
    route: Route,
    path_parameters: dict[str, str],
    source_ip: str,
    server_port: int,
    api_id: str = "harness",
    account_id: str = "123456789012",
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload 2.0 event API Gateway builds for this request."""
    now = time.time() if now is None else now
    request_id = request_id or base64.b32encode(uuid.uuid4().bytes)[:16].decode().rstrip("=")
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        lname = name.lower()
        if lname == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        joined[lname] = f"{joined[lname]},{value}" if lname in joined else value
    host = joined.get("host", "")
    # What API Gateway adds.
    joined["x-forwarded-for"] = (
        f"{joined['x-forwarded-for']}, {source_ip}" if "x-forwarded-for" in joined else source_ip
    )
    joined["x-forwarded-port"] = str(server_port)
    joined["x-forwarded-proto"] = "http"
    trace = f"Root=1-{int(now):08x}-{uuid.uuid4().hex[:24]}"
    joined.setdefault("x-amzn-trace-id", trace)
    if body is not None and "content-length" not in joined and len(body) > 0:
        joined["content-length"] = str(len(body))
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = joined
    qp = _query_parameters(raw_query)
    if qp is not None:
        event["queryStringParameters"] = qp
    event["requestContext"] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0].split(":", 1)[0] if host else "",
        "http": {
            "method": method.upper(),
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        text, b64 = encode_body(body, joined.get("content-type"))
        event["body"] = text
        event["isBase64Encoded"] = b64
    else:
        event["isBase64Encoded"] = False
    return event


class BadResponse(Exception):
    """A function response API Gateway cannot map (its 500)."""


def map_response(payload: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """A payload 2.0 function response as API Gateway answers it: status, headers, body."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadResponse(f"response is not JSON: {e}") from None
    if not isinstance(doc, dict) or "statusCode" not in doc:
        # Payload 2.0 without statusCode: API Gateway answers 200 with the JSON as body.
        return 200, [("content-type", "application/json")], payload
    status = doc.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise BadResponse(f"statusCode {doc.get('statusCode')!r}")
    out_headers: list[tuple[str, str]] = []
    headers = doc.get("headers") or {}
    if not isinstance(headers, dict):
        raise BadResponse("headers is not an object")
    for k, v in headers.items():
        out_headers.append((k, str(v)))
    # Payload 2.0 has no multiValueHeaders; API Gateway ignores them if present.
    for c in doc.get("cookies") or []:
        out_headers.append(("set-cookie", str(c)))
    body = doc.get("body")
    if body is None:
        raw = b""
    elif not isinstance(body, str):
        raise BadResponse("body is not a string")
    elif doc.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError as e:
            raise BadResponse(f"body is not base64: {e}") from None
    else:
        raw = body.encode("utf-8")
    return status, out_headers, raw
