"""The package version: a leaf module, so readers (``wgfsim.io``) stamp files without importing the flows."""

__version__ = "0.1.0"
