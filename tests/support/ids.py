"""Hypothesis strategies for ids as the contract allows them, and ids it refuses.

The contract (``nowplaying.events``): any string of 1-128 Unicode code points without control
characters (category Cc). Surrogates (category Cs) cannot reach an id: they are not characters
and cannot be UTF-8. :func:`opaque_ids` draws from everything else, every script, symbols,
spaces, braces, quotes, ``%`` and ``/`` included, with the awkward ones drawn often.
"""

from __future__ import annotations

from typing import Final

from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from nowplaying.events import MAX_ID_CHARS, Identifier

#: Characters that once were refused or that matter to a key, a record, a URL or a page.
AWKWARD: Final = (
    " {}%:/\\\"',;?#&+=@.*[]<>`~\u00a0\u2028\u200d\ufeff\u00e9e\u0301ユーザー\U0001f3b5\U0010fffd"
)
_ID_ADAPTER: Final[TypeAdapter[str]] = TypeAdapter(Identifier)


def id_characters() -> st.SearchStrategy[str]:
    """One character an id may hold: often an awkward one, else anything but Cc and Cs."""
    return st.one_of(
        st.sampled_from(AWKWARD),
        st.characters(exclude_categories=("Cc", "Cs")),
    )


def opaque_ids(*, max_size: int = MAX_ID_CHARS) -> st.SearchStrategy[str]:
    """A valid id: 1..``max_size`` characters of :func:`id_characters`."""
    return st.text(alphabet=id_characters(), min_size=1, max_size=max_size)


def control_characters() -> st.SearchStrategy[str]:
    """One control character (category Cc): U+0000-U+001F, U+007F-U+009F."""
    return st.sampled_from([chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))])


def is_valid_id(value: object) -> bool:
    """Whether the contract accepts ``value`` as an id (the parser's own rule)."""
    try:
        _ID_ADAPTER.validate_python(value)
    except ValidationError:
        return False
    return True
