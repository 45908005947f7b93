"""Paged listing over an LMDB key range: page tokens are the last key returned."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

from kreg.errors import InvalidArgument

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_TOKEN = re.compile(r"[0-9a-f]{1,64}")


def clamp_page_size(page_size: int) -> int:
    """0 means the default; larger than MAX_PAGE_SIZE means MAX_PAGE_SIZE."""
    if page_size < 0:
        raise InvalidArgument(f"page_size: must not be negative, got {page_size}")
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def scan_start(page_token: str) -> bytes:
    """The first key after the one `page_token` names (keys are fixed-length hex ids)."""
    if not page_token:
        return b""
    if not _TOKEN.fullmatch(page_token):
        raise InvalidArgument(f"page_token: not a token this registry issued: {page_token[:80]!r}")
    return page_token.encode() + b"\x00"


def take_page(matches: Iterable[tuple[str, T]], page_size: int) -> tuple[list[T], str]:
    """Up to page_size items of (id, item) matches, and the token for the next page, which is
    empty when no match is left (one match past the page is looked at to know)."""
    page: list[T] = []
    last = ""
    for item_id, item in matches:
        if len(page) == page_size:
            return page, last
        page.append(item)
        last = item_id
    return page, ""
