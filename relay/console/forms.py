"""A create form as its page shows it: blank, or refused with what was typed and why.

Strategy: a form's POST parses with the API's ``Object`` schemas (and the storage
layer's errors), so what it refuses and why is the API's word for word. When it
refuses, the view renders the form's own page again — status 422 (or 409) — with a
``FormState`` holding the submitted values and the error; the templates' macros
(``_form.html``) put each value back in its control and the error next to the control
it names (``aria-invalid``, ``aria-describedby``, focus), or above the form when it
names none of the form's controls. Secrets typed into a form (passwords) are never
sent back.
"""

from __future__ import annotations

from collections.abc import Collection

import attrs
from werkzeug.datastructures import MultiDict

from ..api.problems import Problem
from ..api.validation import Invalid


@attrs.frozen
class FormState:
    """What a form's controls show."""

    #: The fields as submitted (empty for a blank form).
    values: MultiDict[str, str] = attrs.field(factory=MultiDict)
    #: ``None``: not refused. The control at fault, or ``""`` for the form as a whole.
    field: str | None = None
    #: Why it was refused, in the API's words (``"config.host: is required"``).
    message: str = ""
    #: The status to answer with.
    status: int = 200

    @property
    def refused(self) -> bool:
        return self.field is not None

    def value(self, name: str, default: str = "") -> str:
        """What the control shows: as typed when refused, else ``default``."""
        return self.values.get(name, "") if self.refused else default

    def checked(self, name: str, value: str = "true", *, default: bool = False) -> bool:
        """Whether a checkbox (or option) with ``value`` is on: as sent when refused."""
        return value in self.values.getlist(name) if self.refused else default

    def error(self, name: str) -> str | None:
        """The error to show next to the control ``name``, if it is the one at fault."""
        return self.message if self.refused and self.field == name else None


def blank() -> FormState:
    return FormState()


def _control(path: str) -> str:
    """The form control a member path belongs to: ``config.host`` -> ``config``,
    ``allowed_domains[2]`` -> ``allowed_domains``."""
    for i, char in enumerate(path):
        if char in ".[":
            return path[:i]
    return path


def refused(
    error: Invalid | Problem, values: MultiDict[str, str], controls: Collection[str],
    *, keep_out: Collection[str] = (),
) -> FormState:
    """The form state for ``error``, naming one of ``controls`` or the whole form.

    Args:
        values: the submitted form.
        controls: the names of the form's controls.
        keep_out: controls whose value is not sent back (passwords).
    """
    if isinstance(error, Invalid):
        field, message, status = error.field, str(error), error.status
    else:
        field, message, status = error.field or "", error.detail, error.status
    control = _control(field)
    kept: MultiDict[str, str] = MultiDict(
        [(k, v) for k, v in values.items(multi=True) if k not in keep_out and k != "csrf"]
    )
    return FormState(
        values=kept, field=control if control in controls else "", message=message,
        status=status,
    )
