"""Where legal files (demand letters, court documents) live: outside MEDIA_ROOT, with no URL.

They are served only through legal.views.document_download, which checks the role first;
a storage without a base URL makes any accidental ``.url`` fail loudly instead of leaking
a public link.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.utils.functional import cached_property


class PrivateLegalStorage(FileSystemStorage):
    def __init__(self) -> None:
        super().__init__(base_url=None)

    @cached_property
    def base_location(self) -> str:
        return str(settings.LEGAL_FILES_ROOT)

    @cached_property
    def location(self) -> str:
        return os.path.abspath(self.base_location)

    def _clear_cached_properties(self, setting, **kwargs) -> None:
        # Tests point LEGAL_FILES_ROOT at a temporary folder with override_settings.
        if setting == "LEGAL_FILES_ROOT":
            self.__dict__.pop("base_location", None)
            self.__dict__.pop("location", None)

    def url(self, name: str | None) -> str:
        raise ValueError("Legal files have no public URL: download them through the portal.")


_storage = PrivateLegalStorage()


def private_legal_storage() -> PrivateLegalStorage:
    # A callable keeps the storage out of the migrations.
    return _storage
