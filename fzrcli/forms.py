"""Read a co-owner request out of an approval form, and normalise customer names.

Pure code: it gets decoded JSON (``formComponentValues`` of one approval instance) and
returns plain values or raises ``InvalidForm``. Whatever shape the form has, nothing
else is ever raised, so one odd approval cannot stop a pass.

Customer names have two forms. ``clean_name`` is the display form sent to the CRM:
invisible characters removed, every kind of space made one plain space. ``name_key`` is
the comparison key, applied to form names and CRM names alike: two names are the same
customer name exactly when their keys are equal.
"""

import json
import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "FieldSpec",
    "InvalidForm",
    "ParsedRequest",
    "clean_name",
    "name_key",
    "parse_request",
    "query_variants",
    "split_customer_names",
]

CUSTOMER_TYPES = ("TextareaField", "TextField")
PICKER_TYPE = "InnerContactField"

# DingTalk sends an empty optional field as the four-character string "null".
_EMPTY_MARKER = "null"

# Reasons quote what arrived; a 65,535-character value would drown the message.
_SHOWN_LIMIT = 40

# Every line ending str.splitlines() knows, plus the list separators people type.
_LINE_ENDINGS = "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_COMMAS = ",\uff0c"  # ASCII and full-width
_BARS = "|\uff5c"  # ASCII and full-width
_SEPARATORS = re.compile(f"([{_LINE_ENDINGS}{_COMMAS}{_BARS}])")

# Hangul fillers are letters by category yet print as nothing; they are pasted as
# "blank" text just like zero-width spaces.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})

# Compared by name_key, so upper case and full-width spellings count too.
_LEGAL_SUFFIXES = frozenset(
    {
        "ltd",
        "ltd.",
        "limited",
        "inc",
        "inc.",
        "llc",
        "llc.",
        "co.",
        "co. ltd",
        "co. ltd.",
        "corp",
        "corp.",
        "gmbh",
    }
)


@dataclass(frozen=True)
class FieldSpec:
    """Where each request field lives: a component id, a bizAlias, or a label."""

    customers: str = "客户名称"
    new_owner: str = "需添加的负责人"
    current_owner: str = "选择任意当前客户负责人"


@dataclass(frozen=True)
class ParsedRequest:
    customers: tuple[str, ...]
    new_owner_ids: tuple[str, ...]
    current_owner_ids: tuple[str, ...]
    raw_customers: str


class InvalidForm(Exception):
    """The approval cannot be acted on; ``reason`` is meant for the admin.

    ``unmatched`` marks a field the settings cannot find on the form at all (no such id,
    alias or label, or a label on several fields): a settings problem to fix, not the
    requester's mistake.
    """

    def __init__(
        self,
        field: str,
        reason: str,
        unmatched: bool = False,
        present: str = "",
        ambiguous: bool = False,
    ):
        super().__init__(field, reason)
        self.field = field
        self.reason = reason
        self.unmatched = unmatched
        self.present = present
        # the setting fits several fields: the settings' fault, never the form's
        self.ambiguous = ambiguous

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def parse_request(
    form_values: object, fields: FieldSpec, max_customers: int = 200
) -> ParsedRequest:
    """Read a request from ``formComponentValues``; raise InvalidForm if unusable."""
    entries = _form_entries(form_values)

    customer_entry = _find_field(entries, fields.customers, "customers")
    raw_customers = _customer_text(customer_entry, fields.customers)
    customers = _customer_names(raw_customers, fields.customers, max_customers)

    new_owner_entry = _find_field(entries, fields.new_owner, "new_owner")
    new_owner_ids = _picked_user_ids(new_owner_entry, fields.new_owner, "new_owner")

    current_entry = _find_field(entries, fields.current_owner, "current_owner")
    current_owner_ids = _picked_user_ids(
        current_entry, fields.current_owner, "current_owner"
    )

    return ParsedRequest(
        customers=tuple(customers),
        new_owner_ids=new_owner_ids,
        current_owner_ids=current_owner_ids,
        raw_customers=raw_customers,
    )


def split_customer_names(text: str) -> list[str]:
    """Split a customers field into cleaned, distinct names, in the order written.

    Separators are line endings (CRLF, CR, LF and the rarer ones str.splitlines()
    knows) and the ASCII and full-width comma and vertical bar. The enumeration comma
    ``、`` and both semicolons are not separators: they occur inside company names.

    English company names carry commas ("Acme Co., Ltd."), so a fragment that follows a
    comma and is nothing but a legal suffix (Ltd, Ltd., Limited, Inc, Inc., LLC, LLC.,
    Co., Co. Ltd, Co. Ltd., Corp, Corp., GmbH; any case or width) is joined back to the
    name before it, keeping the comma and spacing as typed: CRM records hold both
    "Co.,Ltd." and "Co., Ltd.", and an exact-match query needs the one written.

    Names are de-duplicated by ``name_key``; the first spelling is kept.
    """
    pieces = _SEPARATORS.split(text)
    fragments = pieces[0::2]
    separators_before = ["", *pieces[1::2]]

    written: list[str] = []
    for separator, fragment in zip(separators_before, fragments, strict=True):
        if not clean_name(fragment):
            continue
        if written and separator in _COMMAS and _is_legal_suffix(fragment):
            written[-1] += separator + fragment
        else:
            written.append(fragment)
    return _distinct_by_key([clean_name(name) for name in written])


def clean_name(text: str) -> str:
    """The display form: no invisible characters, single plain spaces, no edges."""
    visible = "".join(ch for ch in text if not _is_invisible(ch))
    return " ".join(visible.split())


def name_key(text: str) -> str:
    """The comparison key for customer names: cleaned, NFKC, case-folded.

    NFKC runs again after casefold() because case folding can leave decomposed
    sequences ("ß" plus a combining accent folds to "s" + "ś"); without it the key of
    a key would differ from the key.
    """
    compatible = unicodedata.normalize("NFKC", clean_name(text))
    folded = unicodedata.normalize("NFKC", compatible.casefold())
    return clean_name(folded)


def query_variants(name: str) -> list[str]:
    """The distinct spellings worth an exact-match CRM query for one name.

    CRM records were typed by hand in either width, so besides the name as written it
    is tried half-width (NFKC: "ＡＢＣ科技" → "ABC科技"), with full-width brackets and
    commas as Chinese company names usually have them ("北京(中国)" → "北京（中国）"),
    and fully full-width. An empty name has nothing worth sending.
    """
    written = clean_name(name)
    if not written:
        return []

    half = clean_name(unicodedata.normalize("NFKC", written))
    variants = [
        written,
        half,
        half.translate(_WIDE_PUNCTUATION),
        half.translate(_WIDE_ASCII),
    ]
    return [v for i, v in enumerate(variants) if v and v not in variants[:i]]


# Half-width to full-width: Chinese names mix full-width brackets with plain letters.
_WIDE_PUNCTUATION = str.maketrans("(),:;", "（），：；")
_WIDE_ASCII = {code: code + 0xFEE0 for code in range(0x21, 0x7F)}


def _is_legal_suffix(fragment: str) -> bool:
    return name_key(fragment) in _LEGAL_SUFFIXES


def _is_invisible(ch: str) -> bool:
    # Whitespace controls (\t, \n, U+0085) are kept here so str.split() turns them into
    # spaces instead of gluing the words around them together.
    if ch.isspace():
        return False
    return ch in _BLANK_LETTERS or unicodedata.category(ch) in _INVISIBLE_CATEGORIES


def _distinct_by_key(names: list[str]) -> list[str]:
    seen: set[str] = set()
    distinct = []
    for name in names:
        key = name_key(name)
        if key and key not in seen:
            seen.add(key)
            distinct.append(name)
    return distinct


def _form_entries(form_values: object) -> list[dict]:
    if not isinstance(form_values, (list, tuple)):
        kind = type(form_values).__name__
        raise InvalidForm("form", f"form values must be a list, got {kind}")
    if not form_values:
        raise InvalidForm("form", "the approval has no form values")

    # Unrelated components may be anything; only objects can be fields.
    return [entry for entry in form_values if isinstance(entry, dict)]


def _find_field(entries: list[dict], spec: str, field: str) -> dict:
    """The one entry whose id or bizAlias is ``spec``, else whose label is ``spec``.

    Labels are only a fallback: designers rename them while ids and aliases stay.
    """
    by_id = [entry for entry in entries if _has_id_or_alias(entry, spec)]
    if len(by_id) == 1:
        return by_id[0]
    if by_id:
        raise InvalidForm(
            field,
            f"{len(by_id)} fields have id or alias {spec}",
            unmatched=True,
            ambiguous=True,
        )

    label = clean_name(spec)
    by_label = [e for e in entries if label and clean_name(_text(e, "name")) == label]
    if len(by_label) == 1:
        return by_label[0]
    if by_label:
        raise InvalidForm(
            field,
            f"label {spec} is ambiguous: {len(by_label)} fields carry it; "
            "configure the component id instead",
            unmatched=True,
            ambiguous=True,
        )
    present = ", ".join(_describe(e) for e in entries[:12]) or "no fields"
    raise InvalidForm(
        field, f"field {spec} is missing", unmatched=True, present=present
    )


def _describe(entry: dict) -> str:
    label, ident = clean_name(_text(entry, "name"))[:20], _text(entry, "id")[:40]
    return f"{label} [{ident}]" if label else f"[{ident}]"


def _has_id_or_alias(entry: dict, spec: str) -> bool:
    # bizAlias is "" unless the designer set one, so an empty spec must match nothing.
    return bool(spec) and spec in (_text(entry, "id"), _text(entry, "bizAlias"))


def _text(entry: dict, key: str) -> str:
    value = entry.get(key)
    return value if isinstance(value, str) else ""


def _is_empty(value: object) -> bool:
    if value is None:
        return True
    return isinstance(value, str) and clean_name(value) in ("", _EMPTY_MARKER)


def _check_type(entry: dict, spec: str, field: str, allowed: tuple[str, ...]) -> None:
    # componentType is tolerated when absent: the API omits keys it has no value for,
    # and the id or label match is then the evidence there is.
    component_type = entry.get("componentType")
    if component_type in (None, "") or component_type in allowed:
        return
    raise InvalidForm(
        field,
        f"field {spec} has unsupported component type {_shown(component_type)}; "
        f"expected {' or '.join(allowed)}",
    )


def _customer_text(entry: dict, spec: str) -> str:
    _check_type(entry, spec, "customers", CUSTOMER_TYPES)

    value = entry.get("value")
    if _is_empty(value):
        raise InvalidForm("customers", f"field {spec} is empty")
    if not isinstance(value, str):
        kind = type(value).__name__
        raise InvalidForm("customers", f"field {spec} value is {kind}, not text")
    return value


def _customer_names(text: str, spec: str, max_customers: int) -> list[str]:
    names = split_customer_names(text)
    if not names:
        reason = f"field {spec} has no customer names after cleaning"
        raise InvalidForm("customers", reason)
    if len(names) > max_customers:
        raise InvalidForm(
            "customers",
            f"field {spec} lists {len(names)} customers; the limit is {max_customers}",
        )
    return names


def _picked_user_ids(entry: dict, spec: str, field: str) -> tuple[str, ...]:
    """The emplIds in a contact picker's extValue, de-duplicated in picked order.

    ``value`` holds display names only, and two employees can share a name, so it is
    never used to find people.
    """
    _check_type(entry, spec, field, (PICKER_TYPE,))

    people = _decode_people(entry, spec, field)
    user_ids = [_user_id(person, spec, field) for person in people]
    return tuple(dict.fromkeys(user_ids))


def _decode_people(entry: dict, spec: str, field: str) -> list:
    ext_value = entry.get("extValue")
    if _is_empty(ext_value):
        raise InvalidForm(field, _empty_picker_reason(entry, spec, field))
    if not isinstance(ext_value, str):
        kind = type(ext_value).__name__
        raise InvalidForm(field, f"field {spec} extValue is {kind}, not a JSON string")

    # Deeply nested input overflows the decoder's recursion, and over-long integers
    # exceed Python's int conversion limit (a ValueError); both are just broken JSON.
    try:
        people = json.loads(ext_value)
    except (ValueError, RecursionError):
        raise InvalidForm(field, f"field {spec} extValue is not valid JSON") from None

    if not isinstance(people, list):
        kind = type(people).__name__
        raise InvalidForm(field, f"field {spec} extValue is JSON {kind}, not a list")
    if not people:
        raise InvalidForm(field, _empty_picker_reason(entry, spec, field))
    return people


def _empty_picker_reason(entry: dict, spec: str, field: str) -> str:
    if not _is_empty(entry.get("value")):
        return f"field {spec} shows names but its extValue carries no user ids"
    if field == "current_owner":
        return f"field {spec} is empty, so the current-owner claim cannot be checked"
    return f"field {spec} is empty"


def _user_id(person: object, spec: str, field: str) -> str:
    if not isinstance(person, dict) or "emplId" not in person:
        raise InvalidForm(field, f"field {spec} has a picked person without an emplId")

    empl_id = person["emplId"]
    if isinstance(empl_id, str) and empl_id.strip():
        return empl_id

    # A JSON number may already have lost leading zeros; only a plain non-negative
    # integer is trusted, everything else could name the wrong person.
    if isinstance(empl_id, int) and not isinstance(empl_id, bool) and empl_id >= 0:
        return str(empl_id)
    raise InvalidForm(field, f"field {spec} has an unusable emplId {_shown(empl_id)}")


def _shown(value: object) -> str:
    """A value quoted in a reason: short, one printable line, blanks made visible."""
    if isinstance(value, str) and value.strip() and value.isprintable():
        text = value
    else:
        text = repr(value)
    return text if len(text) <= _SHOWN_LIMIT else text[: _SHOWN_LIMIT - 1] + "…"
