"""What a client hears about a body that fails validation: the first ten problems, all counted.

pydantic reports every problem it finds and BentoML's 400 lists every one, so a body of a few
MB with hundreds of thousands of unknown keys cost seconds of a worker and an answer fourteen
times its size (the README's Serving section has the measurement). :class:`BodyValidator`
keeps the answer small and its cost flat:

* a rejection lists the first :data:`MAX_LISTED_ERRORS` problems, counts them all and carries
  no input (BentoML writes ``"<count> validation error for <title>"`` and the listed details);
* a body with more than :data:`FULL_REPORT_KEYS` colons, and so possibly as many keys, is
  screened first: pydantic stops at the first unknown key of each object instead of walking
  them all, and those keys are what the rejection names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from lifeboat.passenger import COLUMN_NAMES

if TYPE_CHECKING:
    from pydantic_core import InitErrorDetails

MAX_LISTED_ERRORS = 10
# Up to this many keys pydantic's full report is cheap: count and list every problem rather than
# stop early.
FULL_REPORT_KEYS = 1024


@functools.cache
def _screen(keys: tuple[str, ...], is_list: bool) -> TypeAdapter[Any]:
    # Only the keys: the first one not in ``keys`` ends the walk over its object (fail_fast).
    known = Annotated[dict[Literal[keys], Any], Field(fail_fast=True)]  # type: ignore[valid-type]
    return TypeAdapter(list[known] if is_list else known)


class Rejection(ValidationError):
    """A ``ValidationError`` that lists its first errors but counts them all.

    ``errors()`` gives the listed ones (never their input); ``error_count()`` the total, so
    BentoML's 400 says how many problems the body had.
    """

    total: int

    def error_count(self) -> int:
        """How many problems the body had; ``errors()`` lists at most ``MAX_LISTED_ERRORS``."""
        return self.total


def rejection(errors: list[Any], title: str, note: str | None = None) -> Rejection:
    """A :class:`Rejection` of the first of ``errors`` (pydantic's error dicts), titled ``title``
    and ``note``.

    Each listed error keeps its type, location and message; its input is dropped.
    """
    listed = errors[:MAX_LISTED_ERRORS]
    notes = [note] if note else []
    if len(errors) > len(listed):
        notes.append(f"the first {len(listed)} listed")
    if notes:
        title = f"{title} ({'; '.join(notes)})"
    details: list[InitErrorDetails] = []
    for e in listed:
        detail: InitErrorDetails = {"type": e["type"], "loc": e["loc"], "input": None}
        if "ctx" in e:
            detail["ctx"] = e["ctx"]
        details.append(detail)
    rejected = Rejection.from_exception_data(title, details, hide_input=True)
    rejected.total = len(errors)
    return rejected


@dataclass(frozen=True)
class BodyValidator:
    """One route's body validation, with bounded rejections.

    Attributes:
        title: What the body is, as its 400 names it ("Passenger", "list[Passenger]").
        validate_json: The full validation of a JSON body (raises ``ValidationError``).
        validate_python: The same for Python objects.
        is_list: Whether the body is a list of objects rather than one object.
        keys: The keys its objects may have (default: the passenger schema's columns).
    """

    title: str
    validate_json: Callable[[str | bytes | bytearray], Any]
    validate_python: Callable[[Any], Any]
    is_list: bool = False
    keys: tuple[str, ...] = COLUMN_NAMES

    def json(self, data: str | bytes | bytearray) -> Any:
        """The validated body.

        Raises:
            Rejection: The body is not valid.
        """
        raw = data.encode() if isinstance(data, str) else data
        # Every key is followed by a colon. Colons in texts, and legitimate batches of more than
        # ~85 passengers, only make the screen run for nothing, at a fraction of the cost of the
        # validation that follows it.
        if raw.count(b":") > FULL_REPORT_KEYS and (unknown := self._unknown_keys(raw)):
            where = "each object's" if self.is_list else "its"
            raise rejection(unknown, self.title, f"stopped at {where} first unknown field")
        return self._bounded(self.validate_json, data)

    def python(self, obj: Any) -> Any:
        """The validated body, from Python objects.

        Raises:
            Rejection: The body is not valid.
        """
        return self._bounded(self.validate_python, obj)

    def _bounded(self, validate: Callable[[Any], Any], data: Any) -> Any:
        try:
            return validate(data)
        except ValidationError as exc:
            errors, title = exc.errors(include_url=False, include_input=False), exc.title
        # Raised outside the handler, so that it does not keep pydantic's full report as its
        # context; and never bound to a local, whose frame its traceback would keep (a cycle
        # holding the body until the garbage collector runs).
        raise rejection(errors, title)

    def _unknown_keys(self, raw: bytes | bytearray) -> list[dict[str, Any]]:
        """An ``extra_forbidden`` error at the first unknown key of each object, if any."""
        try:
            _screen(self.keys, self.is_list).validate_json(raw)
        except ValidationError as exc:
            return [
                {"type": "extra_forbidden", "loc": e["loc"][:-1]}
                for e in exc.errors(include_url=False, include_input=False)
                if e["loc"][-1:] == ("[key]",)
            ]
        # Valid keys, or a body wrong in some other way: the full validation reports it.
        return []
