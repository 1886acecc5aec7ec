"""pagestore: an embeddable, crash-safe ordered key-value store.

    >>> import pagestore
    >>> db = pagestore.open("data.ps")
    >>> db[b"key"] = b"value"
"""
from .errors import (
    CorruptionError,
    DurabilityUnknownError,
    InvalidFileError,
    NotFoundError,
    PageFullError,
    PageStoreError,
    ReadOnlyError,
    ReentrantWriteError,
    StoreClosedError,
    StoreLockedError,
    StorePoisonedError,
    TransactionClosedError,
    VersionMismatchError,
)
from .page import SlottedPage
from .store import Snapshot, Store, Transaction, open, remove

__version__ = "0.1.0"

__all__ = [
    "open",
    "remove",
    "Store",
    "Transaction",
    "Snapshot",
    "SlottedPage",
    "PageStoreError",
    "NotFoundError",
    "PageFullError",
    "CorruptionError",
    "InvalidFileError",
    "VersionMismatchError",
    "StoreLockedError",
    "StorePoisonedError",
    "DurabilityUnknownError",
    "StoreClosedError",
    "TransactionClosedError",
    "ReadOnlyError",
    "ReentrantWriteError",
]
