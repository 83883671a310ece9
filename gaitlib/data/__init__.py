"""Data: importers, pretreatment, the store, synthetic CASIA-B, splits and sampling."""

from gaitlib.data.store import Store, StoreError, StoreWriter

__all__ = ["Store", "StoreError", "StoreWriter"]
