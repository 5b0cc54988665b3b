#!/bin/sh
# Makes sure the system parts of the demand-letter PDFs are installed: WeasyPrint's
# libraries (Pango, HarfBuzz subsetting), a CJK font so 律师函 render in Chinese
# (fonts-noto-cjk), and pdftotext (poppler-utils) for the tests that read the PDFs back.
# Quick and silent when all are there; otherwise installs the missing Debian packages
# with apt, which needs root and a package mirror (like scripts/ensure_chromium.sh).
set -u

PACKAGES="fonts-noto-cjk poppler-utils libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fontconfig"

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "ensure_pdf_deps: missing:$missing; installing with apt-get"
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure_pdf_deps: FAILED: installing needs root (run: sudo apt-get install -y$missing)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086  # the package list is meant to split into words
if ! { apt-get update && apt-get install -y --no-install-recommends $missing; }; then
    echo "ensure_pdf_deps: FAILED: apt-get could not install$missing (no network or no package mirror?)" >&2
    exit 1
fi

if ! command -v pdftotext >/dev/null 2>&1; then
    echo "ensure_pdf_deps: FAILED: apt-get finished but pdftotext is still missing" >&2
    exit 1
fi
# Let fontconfig see the new fonts at once.
fc-cache -f >/dev/null 2>&1 || true
echo "ensure_pdf_deps: installed$missing"
