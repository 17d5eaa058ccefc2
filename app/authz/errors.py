"""OAuth error bodies, ``{"error", "error_description"}``, and Backstage's mapping of its
own errors onto them (``OidcError.fromError``)."""

from __future__ import annotations

from app.core.errors import BackstageError


class OAuthError(Exception):
    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(f"{code}, {description}")
        self.code = code
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


# Backstage's error name -> (OAuth error code, status).
_MAPPING = {
    "InputError": ("invalid_request", 400),
    "AuthenticationError": ("invalid_client", 401),
    "NotAllowedError": ("access_denied", 403),
    "NotFoundError": ("invalid_request", 400),
    # Ours: an unreachable database is a retryable 503, not Backstage's server_error 500.
    "ServiceUnavailableError": ("temporarily_unavailable", 503),
}


def from_error(exc: BaseException) -> OAuthError:
    if isinstance(exc, OAuthError):
        return exc
    if isinstance(exc, BackstageError):
        code, status = _MAPPING.get(exc.name, ("server_error", 500))
        return OAuthError(code, exc.message or "Unknown error", status)
    return OAuthError("server_error", "Unknown error", 500)
