"""Phone numbers, checked and stored in E.164 (+14155550123) with Google's libphonenumber.

At the edge, not in the domain: domain/ is the standard library only. The routers' bodies
declare `Phone` (routers.common), so a use case only ever receives a valid E.164 number, or ""
(which clears the phone)."""

from __future__ import annotations

import phonenumbers

EXAMPLE = "+14155550123"


def normalize_phone(value: str) -> str:
    """The number in E.164; "" stays "" (no phone). ValueError when it is not a valid number
    in international form (a leading + and the country code)."""
    text = value.strip()
    if not text:
        return ""
    if not text.startswith(("+", "00")):
        raise ValueError("must be in international form: a + and the country code")
    try:
        number = phonenumbers.parse("+" + text[2:] if text.startswith("00") else text, None)
    except phonenumbers.NumberParseException as error:
        raise ValueError(f"is not a phone number: {error}") from error
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
