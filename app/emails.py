"""The one rule for what an email address is: used by the CLI, the sign-in form and any API
field that takes one, so an address one of them accepts is never refused by another."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

# A private install signs its first admin in as admin@localhost; email-validator refuses
# special-use domains, so such an address is checked by its local part alone.
LOCAL_DOMAIN = "localhost"
_STAND_IN_DOMAIN = "example.com"


class InvalidEmail(ValueError):
    """The text is not an email address; the message says why, in a sentence."""


def normalize_email(text: str) -> str:
    """The address as stored and looked up (trimmed, lower-case), or InvalidEmail.

    Syntax only: no DNS, no deliverability, since it is a sign-in name, not a mailbox we write to.
    """
    address = text.strip()
    local_part, at_sign, domain = address.rpartition("@")
    on_this_machine = bool(at_sign) and domain.lower() == LOCAL_DOMAIN
    checked = f"{local_part}@{_STAND_IN_DOMAIN}" if on_this_machine else address
    try:
        result = validate_email(checked, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    normalized = f"{result.local_part}@{LOCAL_DOMAIN}" if on_this_machine else result.normalized
    return normalized.lower()
