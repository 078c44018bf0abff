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
from typing import Any, Literal

import attrs
import trio
from cryptography import x509
from quart import Blueprint, Response

from ..storage import StorageError
from .context import json_response, state
from .operations import Reply, operation
from .problems import CONTENT_TYPE, Check, Checks, Problem
from .shapes import dump

blueprint = Blueprint("health", __name__)

#: Seconds the database gets to answer ``SELECT 1``.
PING_TIMEOUT = 2.0


@attrs.frozen
class Health:
    status: Literal["ok"]


@attrs.frozen
class Ready:
    status: Literal["ready"]
    checks: Checks


SCHEMAS = {"Health": Health, "Ready": Ready}


_LIVENESS = ("Liveness: the process answers", {200: Reply("Alive.", "Health")})
_READINESS = (
    "Readiness: database and TLS certificate",
    {
        200: Reply("Ready.", "Ready"),
        503: Reply("A check failed; checks names it.", "Problem", media=CONTENT_TYPE),
    },
)


@blueprint.get("/healthz")
@operation("healthz", *_LIVENESS, public=True)
async def healthz() -> Response:
    return json_response(dump(Health, status="ok"))


@blueprint.get("/api/v1/healthz")
@operation("healthzV1", *_LIVENESS, public=True)
async def healthz_v1() -> Response:
    return await healthz()


async def check_database() -> dict[str, Any]:
    with trio.move_on_after(PING_TIMEOUT):
        try:
            await state().runtime.storage.ping()
        except StorageError as exc:
            return dump(Check, ok=False, detail=str(exc))
        return dump(Check, ok=True)
    return dump(Check, ok=False, detail=f"no answer within {PING_TIMEOUT:g} s")


def check_certificate(path: Path, now: dt.datetime) -> dict[str, Any]:
    """Read a PEM certificate and check its validity period; never raises."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        return dump(Check, ok=False, detail=f"{path}: cannot be read ({exc.strerror or exc})")
    except ValueError:
        return dump(Check, ok=False, detail=f"{path}: not a PEM certificate")
    not_after = certificate.not_valid_after_utc
    not_before = certificate.not_valid_before_utc
    if now > not_after:
        detail = f"{path}: expired on {not_after:%Y-%m-%d}; renew it"
    elif now < not_before:
        detail = f"{path}: not valid before {not_before:%Y-%m-%d}"
    else:
        return dump(Check, ok=True, not_after=not_after.isoformat())
    return dump(Check, ok=False, detail=detail, not_after=not_after.isoformat())


@blueprint.get("/api/v1/readyz")
@operation("readyzV1", *_READINESS, public=True)
async def readyz_v1() -> Response:
    return await readyz()


@blueprint.get("/readyz")
@operation("readyz", *_READINESS, public=True)
async def readyz() -> Response:
    config = state().runtime.config
    database = await check_database()
    if config.tls.cert_file:
        path = config.resolve_path(config.tls.cert_file)
        now = dt.datetime.now(dt.UTC)
        certificate = await trio.to_thread.run_sync(check_certificate, path, now)
    else:
        certificate = dump(
            Check, ok=True, skipped=True,
            detail="tls.cert_file is not set; the self-signed certificate is managed by the SMTP service",
        )
    checks = dump(Checks, database=database, tls_certificate=certificate)
    failing = [name for name, check in checks.items() if not check["ok"]]
    if failing:
        raise Problem(
            503, f"not ready: {', '.join(failing)} failing", kind="not-ready",
            extra={"checks": checks},
        )
    return json_response(dump(Ready, status="ready", checks=checks))
