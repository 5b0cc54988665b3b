"""Compile the translation catalogues (locale/*/LC_MESSAGES/*.po -> .mo) for `make run` and `make test`.

The .mo files are build output (ignored by git): the committed .po files are the source.
GNU msgfmt is used when installed, because it also checks that every translation keeps
the original's %(name)s placeholders; on a machine without gettext the pure-Python polib
writes the same .mo files, so `make run` needs no system package.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def compile_all(*, quiet: bool = False) -> int:
    catalogues = sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po"))
    msgfmt = shutil.which("msgfmt")
    for po_path in catalogues:
        mo_path = po_path.with_suffix(".mo")
        # Written aside and renamed into place: test processes running in parallel compile
        # too, and none may read a half-written catalogue.
        fd, tmp_name = tempfile.mkstemp(suffix=".mo", dir=po_path.parent)
        os.close(fd)
        try:
            if msgfmt:
                result = subprocess.run([msgfmt, "--check-format", "-o", tmp_name, str(po_path)])
                if result.returncode != 0:
                    print(f"msgfmt refused {po_path}", file=sys.stderr)
                    return result.returncode
            else:
                import polib  # only needed without gettext

                polib.pofile(str(po_path)).save_as_mofile(tmp_name)
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, mo_path)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    if not quiet:
        print(f"Compiled {len(catalogues)} catalogue(s) with {'msgfmt' if msgfmt else 'polib'}.")
    return 0


def main() -> int:
    return compile_all()


if __name__ == "__main__":
    sys.exit(main())
