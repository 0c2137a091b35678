"""SigV4 signatures for the requests of `pipelines jobs` to the HTTP API.

The deployed API (API Gateway, terraform/api.tf) uses AWS_IAM authorization: a request must carry a
Signature Version 4 of the caller's credentials for the service ``execute-api``, or it is refused
with 403. The signature is botocore's (SigV4Auth); the credentials and the region come from the
usual chain (environment, profile, SSO, instance or task role) through a boto3 Session.

When to sign (`signer_for`): never when told not to; always when told to; otherwise when the URL is
an AWS one (``https://{id}.execute-api.{region}.amazonaws.com``), whose host names the region.

The credentials never leave this module except inside the signature: no message, log line or repr
shows them.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

from pipelines.engine.errors import ConfigError

SERVICE = "execute-api"
# {api id}.execute-api.{region}.amazonaws.com (.cn in China); {id}-{vpce id}.execute-api.{region}.vpce.amazonaws.com
_AWS_API_HOST = re.compile(r"^[a-z0-9-]+\.execute-api\.([a-z0-9-]+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$")


def region_of(url: str) -> str | None:
    """The region an API Gateway URL names (``eu-west-1`` of ``https://abc.execute-api.eu-west-1.amazonaws.com``),
    or None for any other URL (a local server, a custom domain)."""
    match = _AWS_API_HOST.match((urlsplit(url).hostname or "").lower())
    return match.group(1) if match else None


class RequestSigner:
    """Adds a SigV4 signature (Authorization, X-Amz-Date, X-Amz-Security-Token) to a request's headers."""

    def __init__(self, credentials: Any, region: str, service: str = SERVICE) -> None:
        import logging

        self._credentials = credentials  # botocore credentials: never shown
        self.region = region
        self.service = service
        # botocore.auth logs each canonical request at DEBUG, the session token header with it.
        logging.getLogger("botocore.auth").setLevel(max(logging.INFO, logging.getLogger("botocore.auth").level))

    def __repr__(self) -> str:
        return f"RequestSigner(service={self.service!r}, region={self.region!r})"

    def signed_headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """`headers` and the signature's headers, for exactly this method, URL and body."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        SigV4Auth(self._credentials.get_frozen_credentials(), self.service, self.region).add_auth(request)
        return dict(request.headers.items())


def signer_for(url: str, sign: bool | None, region: str | None) -> RequestSigner | None:
    """The signer of the requests to `url`, or None to send them unsigned.

    `sign`: False never, True always, None when the URL is an API Gateway one. `region`: given, else
    the URL's, else the AWS settings' (AWS_REGION, AWS_DEFAULT_REGION, the profile). ConfigError when a signature is
    wanted and the region or the credentials cannot be found."""
    url_region = region_of(url)
    if sign is False or (sign is None and url_region is None):
        return None
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        session = boto3.session.Session()
        region = region or url_region or os.environ.get("AWS_REGION", "").strip() or session.region_name
        credentials = session.get_credentials()
    except BotoCoreError as exc:  # a profile that is not there, an SSO session expired: botocore's message names no secret
        raise ConfigError(f"cannot sign the requests: the AWS settings cannot be loaded ({type(exc).__name__}: {exc})", where=url) from None
    if not region:
        raise ConfigError("cannot sign the requests: no region (give --region, or set AWS_REGION)", where=url)
    if credentials is None:
        raise ConfigError(
            "cannot sign the requests: no AWS credentials found (environment, profile, SSO or role); "
            "set them, or pass --no-sign for an API without IAM authorization",
            where=url,
        )
    return RequestSigner(credentials, region)
