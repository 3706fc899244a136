"""Catalogue listing and the one safe image decoder."""

from lookalike.data.decode import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    ImageSource,
    decode_image,
    read_image_bytes,
)
from lookalike.data.manifest import (
    ENTRY_KINDS,
    IMAGE_EXTENSIONS,
    CatalogEntry,
    ManifestError,
    iter_image_files,
    load_catalog,
    read_manifest,
    scan_catalog_folder,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "ENTRY_KINDS",
    "IMAGE_EXTENSIONS",
    "CatalogEntry",
    "ImageDecodeError",
    "ImageSource",
    "ManifestError",
    "decode_image",
    "iter_image_files",
    "load_catalog",
    "read_image_bytes",
    "read_manifest",
    "scan_catalog_folder",
]
