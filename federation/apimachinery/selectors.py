"""Label and field selectors, parsed and matched as the Kubernetes apiserver does.

Lists and watches filter with ``?labelSelector=`` and ``?fieldSelector=``; ReplicaSets, Services and
the placement annotations carry ``metav1.LabelSelector`` objects. Both servers and the controllers
share this one implementation so that "which objects match" never differs between them.

Guarantees:

* Pure: no I/O, no global state. Selectors are frozen values; equal selectors compare equal and
  print the same canonical string (requirements sorted, set values sorted and de-duplicated), and
  ``parse_label_selector(str(sel)) == sel`` / ``parse_field_selector(str(sel)) == sel``.
* The empty selector matches everything.
* Malformed query strings raise :class:`~federation.apimachinery.errors.ApiError` 400 BadRequest
  with Kubernetes' wording ("unable to parse requirement: ..." / "invalid selector: ...");
  malformed selector *objects* raise :class:`ValueError`, which the caller reports as a 422 cause.

Two deliberate leniencies over Kubernetes: ``==`` is stored as ``=`` (same meaning), and the words
``in``/``notin`` are accepted as keys or values where the position makes them unambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from federation.apimachinery.errors import ApiError, bad_request
from federation.apimachinery.validation import DNS1123_SUBDOMAIN, LABEL_VALUE, QUALIFIED_NAME

Operator = Literal["=", "!=", "in", "notin", "exists", "!", "gt", "lt"]
"""Requirement operators, spelled as Kubernetes' ``selection.Operator`` (``==`` folds into ``=``)."""

_INT_RE = re.compile(r"^[-+]?[0-9]+$")

_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
    "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
    "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def label_key_error(key: str) -> str | None:
    """Why ``key`` is not a valid label key (a qualified name), or None when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > 253:
            return "prefix part must be no more than 253 characters"
        if not DNS1123_SUBDOMAIN.match(prefix):
            return (
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character"
            )
        if "/" in prefix:
            return (
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', with an "
                "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not QUALIFIED_NAME.match(name):
        return _NAME_MSG
    return None


def label_value_error(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None when it is."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not LABEL_VALUE.match(value):
        return _VALUE_MSG
    return None


# --------------------------------------------------------------------------------------------------
# Label selectors


@dataclass(frozen=True, order=True)
class Requirement:
    """One ``key op values`` term; ``values`` is sorted and de-duplicated."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        if op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        if op in ("!=", "notin"):
            return self.key not in labels or labels[self.key] not in self.values
        # gt / lt: the label must exist and be an integer (Kubernetes ignores labels that are not).
        raw = labels.get(self.key)
        if raw is None or not _INT_RE.match(raw):
            return False
        have, want = int(raw), int(self.values[0])
        return have > want if op == "gt" else have < want

    def __str__(self) -> str:
        op = self.operator
        if op == "exists":
            return self.key
        if op == "!":
            return f"!{self.key}"
        if op in ("in", "notin"):
            shown = "," if self.values == ("",) else ",".join(self.values)  # "()" would read as no values
            return f"{self.key} {op} ({shown})"
        if op == "gt":
            return f"{self.key}>{self.values[0]}"
        if op == "lt":
            return f"{self.key}<{self.values[0]}"
        return f"{self.key}{op}{self.values[0]}"


def make_requirement(key: str, operator: Operator, values: Any = ()) -> Requirement:
    """A validated :class:`Requirement`; raises ValueError with Kubernetes' wording when invalid."""
    why = label_key_error(key)
    if why is not None:
        raise ValueError(f'key: Invalid value: "{key}": {why}')
    for v in values:
        if not isinstance(v, str):
            raise ValueError(f"values: Invalid value: {v!r}: must be a string")
    vals = tuple(sorted(set(values)))
    if operator in ("in", "notin"):
        if not vals:
            raise ValueError(
                "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
            )
    elif operator in ("=", "!="):
        if len(vals) != 1:
            raise ValueError(
                f"values: Invalid value: {list(vals)}: exact-match compatibility requires one single value"
            )
    elif operator in ("exists", "!"):
        if vals:
            raise ValueError(
                f"values: Invalid value: {list(vals)}: values set must be empty for exists and does not exist"
            )
    elif operator in ("gt", "lt"):
        if len(vals) != 1 or not _INT_RE.match(vals[0]):
            raise ValueError(
                f"values: Invalid value: {list(vals)}: for 'Gt', 'Lt' operators, "
                "exactly one value is required and it must be an integer"
            )
        return Requirement(key, operator, vals)
    else:
        raise ValueError(f'operator: Unsupported value: "{operator}"')
    for i, v in enumerate(vals):
        why = label_value_error(v)
        if why is not None:
            raise ValueError(f'values[{i}][{key}]: Invalid value: "{v}": {why}')
    return Requirement(key, operator, vals)


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements, kept in canonical (sorted) order."""

    requirements: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        ordered = tuple(sorted(set(self.requirements)))
        if ordered != self.requirements:
            object.__setattr__(self, "requirements", ordered)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def equalities(self) -> dict[str, str]:
        """The ``key=value`` requirements (``in`` with a single value counts): what a storage may
        push down to an index. A superset filter: :meth:`matches` must still be applied."""
        out: dict[str, str] = {}
        for r in self.requirements:
            if r.operator in ("=", "in") and len(r.values) == 1:
                out.setdefault(r.key, r.values[0])
        return out

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()


# A small lexer in the spirit of Kubernetes' labels.Lexer: identifiers are runs of anything that is
# neither whitespace nor one of the special symbols.
_TOKEN_RE = re.compile(r"\s*(?:(==|!=|=|!|\(|\)|,|>|<)|([^\s=!(),<>]+))")


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:  # only trailing whitespace remains
            return
        pos = m.end()
        if m.group(1) is not None:
            yield ("op", m.group(1))
        elif m.group(2) is not None:
            yield ("id", m.group(2))
        else:  # pragma: no cover - the pattern always matches one group or nothing
            return


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = list(_tokens(text))
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("end", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.i += 1
        return tok

    def fail(self, found: tuple[str, str], expected: str) -> ApiError:
        shown = found[1] if found[0] != "end" else ""
        return bad_request(f"unable to parse requirement: found '{shown}', expected: {expected}")

    def requirement(self) -> Requirement:
        kind, val = self.take()
        if kind == "op" and val == "!":
            kind, key = self.take()
            if kind != "id":
                raise self.fail((kind, key), "identifier after '!'")
            return self._checked(key, "!", ())
        if kind != "id":
            raise self.fail((kind, val), "identifier")
        key = val
        kind, val = self.peek()
        if kind == "end" or (kind, val) == ("op", ","):
            return self._checked(key, "exists", ())
        self.take()
        if kind == "id" and val in ("in", "notin"):
            return self._checked(key, "in" if val == "in" else "notin", self._set())
        if kind == "op" and val in ("=", "==", "!="):
            return self._checked(key, "!=" if val == "!=" else "=", (self._exact_value(),))
        if kind == "op" and val in (">", "<"):
            nk, nv = self.take()
            if nk != "id":
                raise self.fail((nk, nv), "identifier")
            return self._checked(key, "gt" if val == ">" else "lt", (nv,))
        raise self.fail((kind, val), "'=', '!=', '==', 'in', notin'")

    def _exact_value(self) -> str:
        kind, val = self.peek()
        if kind == "end" or (kind, val) == ("op", ","):
            return ""
        self.take()
        if kind != "id":
            raise self.fail((kind, val), "identifier")
        return val

    def _set(self) -> tuple[str, ...]:
        kind, val = self.take()
        if (kind, val) != ("op", "("):
            raise self.fail((kind, val), "'('")
        if self.peek() == ("op", ")"):
            self.take()
            return ()
        values: list[str] = []
        current: str | None = None  # the identifier read since the last ',' (an empty item is "")
        while True:
            kind, val = self.take()
            if kind == "id" and current is None:
                current = val
            elif (kind, val) in (("op", ","), ("op", ")")):
                values.append(current or "")
                if val == ")":
                    return tuple(values)
                current = None
            else:
                raise self.fail((kind, val), "',' or ')'")

    def _checked(self, key: str, op: Operator, values: tuple[str, ...]) -> Requirement:
        try:
            return make_requirement(key, op, values)
        except ValueError as exc:
            raise bad_request(f"unable to parse requirement: {exc}") from None

    def parse(self) -> LabelSelector:
        reqs: list[Requirement] = []
        if self.peek()[0] == "end":
            return EVERYTHING
        while True:
            reqs.append(self.requirement())
            kind, val = self.take()
            if kind == "end":
                return LabelSelector(tuple(reqs))
            if (kind, val) != ("op", ","):
                raise self.fail((kind, val), "',' or 'end of string'")
            if self.peek()[0] == "end":
                raise self.fail(self.peek(), "identifier")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the ``labelSelector`` query syntax (``a=b,c!=d,e in (f,g),!h,i``).

    Raises ApiError 400 BadRequest on bad syntax or invalid keys/values."""
    return _Parser(text).parse()


_OBJECT_OPERATORS: dict[str, Operator] = {
    "In": "in",
    "NotIn": "notin",
    "Exists": "exists",
    "DoesNotExist": "!",
}


def label_selector_from_object(sel: Mapping[str, Any]) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` (``matchLabels`` + ``matchExpressions``).

    An empty object selects everything. Raises ValueError naming the bad part
    (e.g. ``matchExpressions[0].operator: Unsupported value: "Gt"``)."""
    if not isinstance(sel, Mapping):
        raise ValueError(f"must be an object, not {type(sel).__name__}")
    reqs: list[Requirement] = []
    match_labels = sel.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise ValueError("matchLabels: must be an object of strings")
    for key, value in match_labels.items():
        if not isinstance(value, str):
            raise ValueError(f"matchLabels.{key}: Invalid value: {value!r}: must be a string")
        try:
            reqs.append(make_requirement(key, "=", (value,)))
        except ValueError as exc:
            raise ValueError(f"matchLabels: {exc}") from None
    exprs = sel.get("matchExpressions") or []
    if not isinstance(exprs, list):
        raise ValueError("matchExpressions: must be a list")
    for i, expr in enumerate(exprs):
        where = f"matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            raise ValueError(f"{where}: must be an object")
        op_name = expr.get("operator")
        op = _OBJECT_OPERATORS.get(op_name) if isinstance(op_name, str) else None
        if op is None:
            supported = ", ".join(f'"{o}"' for o in _OBJECT_OPERATORS)
            raise ValueError(
                f'{where}.operator: Unsupported value: "{op_name}": supported values: {supported}'
            )
        key = expr.get("key")
        if not isinstance(key, str):
            raise ValueError(f"{where}.key: Required value")
        values = expr.get("values") or []
        if not isinstance(values, list):
            raise ValueError(f"{where}.values: must be a list of strings")
        try:
            reqs.append(make_requirement(key, op, values))
        except ValueError as exc:
            raise ValueError(f"{where}.{exc}") from None
    return LabelSelector(tuple(reqs))


# --------------------------------------------------------------------------------------------------
# Field selectors

FieldOperator = Literal["=", "!="]


def _escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(value: str, term: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{ch} in '{term}'")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise bad_request(f"invalid field selector: unescaped {ch!r} in '{term}'")
        else:
            out.append(ch)
    if escaped:
        raise bad_request(f"invalid field selector: invalid escape sequence: \\ at end of '{term}'")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    terms: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == ",":
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return terms


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of ``field=value`` / ``field!=value`` terms, in the order given."""

    terms: tuple[tuple[str, FieldOperator, str], ...] = ()

    @property
    def requirements(self) -> list[tuple[str, FieldOperator, str]]:
        return list(self.terms)

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, get: Callable[[str], str | None]) -> bool:
        """``get(field)`` returns the object's value of a field label; a missing value (None)
        compares as the empty string, as in Kubernetes' ``fields.Set``."""
        for field, op, value in self.terms:
            have = get(field)
            if ((have or "") == value) != (op == "="):
                return False
        return True

    def equalities(self) -> dict[str, str]:
        """The ``field=value`` terms (e.g. ``metadata.name``) a storage may push down."""
        out: dict[str, str] = {}
        for field, op, value in self.terms:
            if op == "=":
                out.setdefault(field, value)
        return out

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{_escape_field_value(v)}" for f, op, v in self.terms)


def parse_field_selector(text: str) -> FieldSelector:
    """Parse the ``fieldSelector`` query syntax (``metadata.name=x,status.phase!=Running``).

    Values may escape ``\\``, ``,`` and ``=`` with a backslash and are taken verbatim otherwise
    (spaces included, as in Kubernetes); spaces around a field name are ignored. Raises ApiError
    400 BadRequest on terms without a supported operator."""
    terms: list[tuple[str, FieldOperator, str]] = []
    for term in _split_terms(text):
        if not term:
            continue
        for i in range(len(term)):
            if term.startswith("!=", i):
                lhs, op, rhs = term[:i], "!=", term[i + 2 :]
                break
            if term.startswith("==", i):
                lhs, op, rhs = term[:i], "=", term[i + 2 :]
                break
            if term.startswith("=", i):
                lhs, op, rhs = term[:i], "=", term[i + 1 :]
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        lhs = lhs.strip(" ")
        if not lhs:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        terms.append((lhs, "!=" if op == "!=" else "=", _unescape_field_value(rhs, term)))
    return FieldSelector(tuple(terms))
