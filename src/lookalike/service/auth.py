"""API key authentication, roles and per-key rate limits, as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError
from .keys import ApiKey, Role
from .ratelimit import retry_after_header
from .state import ServiceState, get_state

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="An API key from `lookalike keys create` (lk_...).",
)
bearer_token = HTTPBearer(auto_error=False, description="The same API key as a bearer token.")


def charge(state: ServiceState, key: ApiKey, images: int) -> None:
    """Take ``images`` tokens from the key's bucket, or answer 429 with Retry-After."""
    wait = state.limiter.take(key.key_id, images)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"key {key.key_id!r} is over its limit of {state.limiter.rate:g} images/s "
            f"(burst {state.limiter.burst}); retry in {wait:.2f} s",
            headers=retry_after_header(wait),
        )


def require(role: Role) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency: the caller's key, which must hold ``role``; costs one rate-limit token."""

    async def authenticate(
        request: Request,
        state: Annotated[ServiceState, Depends(get_state)],
        header_key: Annotated[str | None, Security(api_key_header)] = None,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_token)] = None,
    ) -> ApiKey:
        presented = header_key or (bearer.credentials if bearer else None)
        if not presented:
            raise ApiError(
                401,
                "missing_api_key",
                "this endpoint needs an API key: send it as X-API-Key or Authorization: Bearer",
                headers={"WWW-Authenticate": "Bearer"},
            )
        key = state.keys.authenticate(presented)
        if key is None:
            raise ApiError(
                401,
                "invalid_api_key",
                "unknown or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.key_id = key.key_id  # for the request log line
        if not key.role.allows(role):
            raise ApiError(
                403,
                "forbidden",
                f"this needs the {role.value} role; key {key.key_id!r} is a {key.role.value}",
            )
        charge(state, key, 1)
        return key

    return authenticate


Moderator = Annotated[ApiKey, Depends(require(Role.MODERATOR))]
Admin = Annotated[ApiKey, Depends(require(Role.ADMIN))]
