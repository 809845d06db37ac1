"""Every 4xx of the API is `{"error": code, "message": text}`: the handlers that make it so."""

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja.errors import AuthenticationError, HttpError, ValidationError

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    429: "rate_limited",
}


class ApiError(Exception):
    """A refusal with its status, code and message (raised anywhere in a request)."""

    def __init__(self, status: int, message: str, code: str = "", headers=None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code or CODES.get(status, "error")
        self.headers = headers or {}


def error_response(status: int, message: str, code: str = "", headers=None) -> JsonResponse:
    response = JsonResponse(
        {"error": code or CODES.get(status, "error"), "message": message}, status=status
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors:
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body",))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    return "; ".join(parts) or "Invalid request."


def install(api) -> None:
    """Register the handlers on the NinjaAPI."""

    def api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return error_response(exc.status, exc.message, exc.code, exc.headers)

    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        message = "Send a session cookie or an API token: Authorization: Bearer <token>."
        return error_response(401, message, headers={"WWW-Authenticate": "Bearer"})

    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        message = str(exc)
        if exc.status_code == 403 and "CSRF" in message:
            message = "CSRF check failed: a session call that changes something needs the "
            message += "X-CSRFToken header (or use an API token)."
            return error_response(403, message, "csrf_failed")
        return error_response(exc.status_code, message)

    def forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
        return error_response(403, str(exc) or "You may not do this.")

    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response(404, str(exc) or "Not found.")

    def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        return error_response(400, _validation_message(exc), "invalid")

    api.add_exception_handler(ApiError, api_error)
    api.add_exception_handler(AuthenticationError, unauthenticated)
    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(PermissionDenied, forbidden)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(ValidationError, invalid)


def json_errors(view):
    """Wrap a view of the API so that Django's own 4xx answers (405 for a wrong method) carry
    the JSON error body too, and refuse NUL characters (PostgreSQL cannot compare them)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if "\x00" in request.path or any("\x00" in v for v in request.GET.values()):
            return error_response(400, "NUL characters are not allowed.", "invalid")
        response = view(request, *args, **kwargs)
        if (
            400 <= response.status_code < 500
            and response.get("Content-Type", "").split(";")[0] != "application/json"
        ):
            status = response.status_code
            message = {405: f"{request.method} is not allowed here."}.get(status, "Refused.")
            allow = {"Allow": response["Allow"]} if response.has_header("Allow") else None
            return error_response(status, message, headers=allow)
        return response

    return wrapped
