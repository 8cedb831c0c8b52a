"""Hypothesis strategies for identifier text, written from the rule's definition (the Unicode
categories ``str.isprintable()`` excludes), not from the code under test."""

from __future__ import annotations

from hypothesis import strategies as st

# Python's str.isprintable(): every "Other" (Cc, Cf, Cs, Co, Cn) and "Separator" (Zs, Zl, Zp)
# code point is not printable, except the ASCII space.
NOT_PRINTABLE_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp")

printable_chars = st.characters(exclude_categories=NOT_PRINTABLE_CATEGORIES, include_characters=" ")
not_printable_chars = st.characters(
    categories=NOT_PRINTABLE_CATEGORIES, exclude_characters=" "
).filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF)  # a lone surrogate is not even UTF-8

# The characters that start a template placeholder form; identifiers built without them cannot
# hold one, so the strategies below need no filter that would mirror the code under test.
_TEMPLATE_CHARS = "${}<>"
_plain_chars = printable_chars.filter(lambda c: c not in _TEMPLATE_CHARS)


def identifiers(max_size: int) -> st.SearchStrategy[str]:
    """Valid identifiers: printable, 1..max_size characters, no space at either end, and none of
    the characters a placeholder needs (nor ``NOT_SET``)."""
    return (
        st.text(_plain_chars, min_size=1, max_size=max_size)
        .filter(lambda v: v[0] != " " and v[-1] != " ")
        .filter(lambda v: v != "NOT_SET")
    )


def references(max_size: int) -> st.SearchStrategy[str]:
    """Valid queue/agent ids: printable (blank allowed), no placeholder characters."""
    return st.text(_plain_chars, max_size=max_size).filter(lambda v: v != "NOT_SET")
