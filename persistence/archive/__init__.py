"""Portable archives of a whole database: what `coscribe export` writes and `coscribe import` reads.

``format`` holds the file format (documented there), its values and its reader; ``export``
writes an archive, ``importer`` loads one (``import`` is a keyword, hence the name).
"""

from .export import ExportReport, export_archive
from .format import (
    FORMAT,
    FORMAT_VERSION,
    TABLES,
    ArchiveError,
    ArchiveExistsError,
    ArchiveHeader,
    ArchiveProgress,
    ProgressCallback,
    read_header,
)
from .importer import ImportReport, import_archive

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "TABLES",
    "ArchiveError",
    "ArchiveExistsError",
    "ArchiveHeader",
    "ArchiveProgress",
    "ExportReport",
    "ImportReport",
    "ProgressCallback",
    "export_archive",
    "import_archive",
    "read_header",
]
