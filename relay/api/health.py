"""``/healthz`` and ``/readyz`` (also under ``/api/v1``), without authentication.

``/healthz`` is liveness: the process answers; it touches nothing else, so a database
outage never gets the API restarted. ``/readyz`` is readiness: the database answers a
ping within ``PING_TIMEOUT`` and the TLS certificate (``tls.cert_file``) can be read
and is valid now. When no certificate is configured the SMTP service uses a
self-signed one it manages itself, so that check is skipped and says so. A failing
check answers 503 as a problem whose ``checks`` member names it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import trio
from cryptography import x509
from quart import Blueprint, Response

from ..storage import StorageError
from .context import json_response, state
from .problems import Problem

blueprint = Blueprint("health", __name__)

#: Seconds the database gets to answer ``SELECT 1``.
PING_TIMEOUT = 2.0


@blueprint.get("/healthz")
@blueprint.get("/api/v1/healthz")
async def healthz() -> Response:
    return json_response({"status": "ok"})


async def check_database() -> dict[str, Any]:
    with trio.move_on_after(PING_TIMEOUT):
        try:
            await state().runtime.storage.ping()
        except StorageError as exc:
            return {"ok": False, "detail": str(exc)}
        return {"ok": True}
    return {"ok": False, "detail": f"no answer within {PING_TIMEOUT:g} s"}


def check_certificate(path: Path, now: dt.datetime) -> dict[str, Any]:
    """Read a PEM certificate and check its validity period; never raises."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        return {"ok": False, "detail": f"{path}: cannot be read ({exc.strerror or exc})"}
    except ValueError:
        return {"ok": False, "detail": f"{path}: not a PEM certificate"}
    not_after = certificate.not_valid_after_utc
    not_before = certificate.not_valid_before_utc
    result: dict[str, Any] = {"not_after": not_after.isoformat()}
    if now > not_after:
        return {**result, "ok": False, "detail": f"{path}: expired on {not_after:%Y-%m-%d}; renew it"}
    if now < not_before:
        return {**result, "ok": False, "detail": f"{path}: not valid before {not_before:%Y-%m-%d}"}
    return {**result, "ok": True}


@blueprint.get("/readyz")
@blueprint.get("/api/v1/readyz")
async def readyz() -> Response:
    config = state().runtime.config
    checks: dict[str, Any] = {"database": await check_database()}
    if config.tls.cert_file:
        path = config.resolve_path(config.tls.cert_file)
        now = dt.datetime.now(dt.UTC)
        checks["tls_certificate"] = await trio.to_thread.run_sync(check_certificate, path, now)
    else:
        checks["tls_certificate"] = {
            "ok": True, "skipped": True,
            "detail": "tls.cert_file is not set; the self-signed certificate is managed by the SMTP service",
        }
    failing = [name for name, check in checks.items() if not check["ok"]]
    if failing:
        raise Problem(
            503, f"not ready: {', '.join(failing)} failing", kind="not-ready",
            extra={"checks": checks},
        )
    return json_response({"status": "ready", "checks": checks})
