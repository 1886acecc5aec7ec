"""pagestore: an embeddable, crash-safe ordered key-value store.

    >>> import pagestore
    >>> page = pagestore.SlottedPage.new(4096)
"""
from .errors import (
    CorruptionError,
    InvalidFileError,
    NotFoundError,
    PageFullError,
    PageStoreError,
    ReadOnlyError,
    StoreClosedError,
    StoreLockedError,
    TransactionClosedError,
    VersionMismatchError,
)
from .page import SlottedPage

__version__ = "0.1.0"

__all__ = [
    "SlottedPage",
    "PageStoreError",
    "NotFoundError",
    "PageFullError",
    "CorruptionError",
    "InvalidFileError",
    "VersionMismatchError",
    "StoreLockedError",
    "StoreClosedError",
    "TransactionClosedError",
    "ReadOnlyError",
]
