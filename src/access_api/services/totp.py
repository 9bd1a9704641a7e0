"""TOTP arithmetic (RFC 6238, through pyotp): secrets, provisioning URIs, codes to steps."""

from __future__ import annotations

import io
import re
from datetime import datetime

import pyotp
import segno
from pyotp.exceptions import OTPVerificationError

from access_api.domain.two_factor import DRIFT_STEPS, ISSUER

_CODE = re.compile(r"^[0-9]{6}$")


def new_secret() -> str:
    """160 random bits, base32: what RFC 4226 recommends and every authenticator app reads."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The URI as an SVG QR code, for the enrolment screen to show as it is."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False)
    return buffer.getvalue().decode()


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code this is, within the allowed drift; None for a wrong code."""
    code = code.strip().replace(" ", "")
    if not _CODE.fullmatch(code):
        return None
    try:
        step: int = pyotp.TOTP(secret).verify_and_get_timecode(
            code, for_time=now, valid_window=DRIFT_STEPS
        )
    except OTPVerificationError:
        return None
    return step
