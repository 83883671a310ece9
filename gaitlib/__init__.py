"""gaitlib: a reproducible study of GaitMM, 3D Local CNN and CSTL."""

__version__ = "0.1.0"
