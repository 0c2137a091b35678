"""An independent check of AWS Signature Version 4, written from the specification with hashlib and
hmac only (no botocore): what API Gateway does with a request before it lets it through.

    problem = verify(method, target, headers, body, secrets)   # None when the signature holds

`signature()` is tested against AWS's published test vectors (the "get-vanilla" cases of the
Signature Version 4 test suite), so a signature it accepts is one AWS would.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def canonical_uri(path: str) -> str:
    """Non-S3 services: each segment of the path as sent URI-encoded once more (only unreserved characters stay)."""
    return quote(path or "/", safe="/-_.~")


def canonical_query(query: str) -> str:
    pairs = [(quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in parse_qsl(query, keep_blank_values=True)]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(method: str, target: str, headers: Mapping[str, str], signed: list[str], body: bytes) -> str:
    parts = urlsplit(target)
    lines = [f"{name}:{' '.join(headers[name].split())}\n" for name in signed]
    return "\n".join(
        [method.upper(), canonical_uri(parts.path), canonical_query(parts.query), "".join(lines), ";".join(signed),
         hashlib.sha256(body).hexdigest()]
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signature(secret: str, amz_date: str, region: str, service: str, request: str) -> str:
    """The hex signature of a canonical request: the string to sign, under the key derived for the day."""
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), date), region), service), "aws4_request")
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def verify(
    method: str, target: str, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str],
    service: str = "execute-api", region: str | None = None,
) -> str | None:
    """None if the request's SigV4 signature holds for one of `secrets` (access key id -> secret);
    otherwise what is wrong. `headers` as received (any case); `target` the path and query as sent."""
    lower = {name.lower(): value for name, value in headers.items()}
    match = _AUTHORIZATION.match(lower.get("authorization", ""))
    if match is None:
        return "no SigV4 Authorization header"
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed or signed != sorted(signed):
        return f"the signed headers must be sorted and include host and x-amz-date: {signed}"
    if any(name not in lower for name in signed):
        return "a signed header was not sent"
    if "x-amz-security-token" in lower and "x-amz-security-token" not in signed:
        return "the session token is not signed"
    if not lower["x-amz-date"].startswith(match["date"]) or match["service"] != service or (region and match["region"] != region):
        return f"wrong scope {match['date']}/{match['region']}/{match['service']}"
    secret = secrets.get(match["key"])
    if secret is None:
        return "unknown access key"
    expected = signature(secret, lower["x-amz-date"], match["region"], match["service"], canonical_request(method, target, lower, signed, body))
    return None if hmac.compare_digest(expected, match["signature"]) else "the signature does not match"
