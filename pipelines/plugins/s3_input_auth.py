"""embulk-input-s3's authentication options, checked when a config is loaded: `auth_method` and the
keys each method needs and takes, and `http_proxy`. The client they make: pipelines.engine.s3_access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pipelines.engine.settings import option

AuthMethod = Literal["basic", "env", "instance", "profile", "properties", "anonymous", "session", "default"]


@dataclass(frozen=True)
class HttpProxy:
    """embulk-input-s3's http_proxy."""

    host: str
    port: int | None = None
    https: bool = True
    user: str | None = None
    password: str | None = option(None, secret=True)

    @property
    def url(self) -> str:
        from urllib.parse import quote

        login = f"{quote(self.user, safe='')}:{quote(self.password or '', safe='')}@" if self.user else ""
        return f"{'https' if self.https else 'http'}://{login}{self.host}{f':{self.port}' if self.port else ''}"


# Which keys each auth_method needs (all of them) and takes.
AUTH_KEYS = {
    "basic": ({"access_key_id", "secret_access_key"}, {"access_key_id", "secret_access_key"}),
    "session": ({"access_key_id", "secret_access_key", "session_token"},) * 2,
    "profile": (set(), {"profile_file", "profile_name"}),
}
ALL_AUTH_KEYS = ("access_key_id", "secret_access_key", "session_token", "profile_file", "profile_name")


def check_auth(s: Any) -> None:
    """The keys of `auth_method`: those it needs are given, no other is."""
    method = s.auth_method
    if method == "properties":
        raise ValueError(
            "auth_method 'properties' reads Java system properties (aws.accessKeyId), which do not exist here: "
            "use auth_method env (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or basic"
        )
    given = {k for k in ALL_AUTH_KEYS if getattr(s, k) is not None}
    if method is None:
        needs, takes = set(), {"access_key_id", "secret_access_key", "session_token"}
        if given & takes and not {"access_key_id", "secret_access_key"} <= given:
            raise ValueError("set both access_key_id and secret_access_key (and session_token with them), or none")
    else:
        needs, takes = AUTH_KEYS.get(method, (set(), set()))
    if needs - given:
        raise ValueError(f"auth_method {method} needs {', '.join(sorted(needs - given))}")
    if given - takes:
        extra = ", ".join(sorted(given - takes))
        raise ValueError(f"auth_method {method} takes no {extra}" if method else f"{extra}: set the auth_method that takes it")
