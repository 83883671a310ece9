"""Data: importers, pretreatment, the store, synthetic CASIA-B, splits and sampling."""

from gaitlib._lazy import lazy_module_attributes

__all__ = ["Store", "StoreError", "StoreWriter"]


# The store needs pandas: imported on first use, so that the light submodules (splits) and the
# command line's start-up do not pay for it.
__getattr__, __dir__ = lazy_module_attributes(__name__, globals(), dict.fromkeys(__all__, "store"),
                                              __all__)
