#!/usr/bin/env bash
# Vendor the JavaScript the built book needs, so it renders with no network:
#   MathJax 3 (math), RequireJS + the ipywidgets HTML manager (saved widget state).
# _config.yml serves book_assets/ via `html_extra_path` (the files land in
# _build/html/vendor/) and points `mathjax_path` / `nb_ipywidgets_js` at them.
# Run from the repository root, normally through `make book-assets`.
set -euo pipefail

MATHJAX_VERSION=3.2.2
WIDGETS_VERSION=1.0.6   # the @jupyter-widgets/html-manager version myst-nb 1.x loads
REQUIREJS_VERSION=2.3.8

DEST=book_assets/vendor

if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm not found. Install Node.js (>= 18) and npm, e.g. 'apt-get install -y nodejs npm'," >&2
    echo "       then run 'make book-assets' again." >&2
    exit 1
fi

# Up to date if the stamp is newer than this script (which pins the versions).
if [[ "$DEST/.done" -nt "${BASH_SOURCE[0]}" ]]; then
    echo "book assets already in $DEST (delete it to refetch)"
    exit 0
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "fetching mathjax@$MATHJAX_VERSION, @jupyter-widgets/html-manager@$WIDGETS_VERSION, requirejs@$REQUIREJS_VERSION (npm) ..."
npm install --no-save --no-package-lock --no-audit --no-fund --ignore-scripts \
    --loglevel=error --prefix "$TMP" \
    "mathjax@$MATHJAX_VERSION" \
    "@jupyter-widgets/html-manager@$WIDGETS_VERSION" \
    "requirejs@$REQUIREJS_VERSION" >/dev/null

NM="$TMP/node_modules"
rm -rf "$DEST"
mkdir -p "$DEST/mathjax" "$DEST/html-manager"

# MathJax: the combined TeX+MathML -> CommonHTML component, plus the pieces it loads
# on demand (extensions, fonts, menu, accessibility incl. the speech-rule engine).
cp "$NM/mathjax/es5/tex-mml-chtml.js" "$DEST/mathjax/"
for sub in input output ui a11y adaptors sre; do
    cp -R "$NM/mathjax/es5/$sub" "$DEST/mathjax/"
done
cp "$NM/mathjax/LICENSE" "$DEST/mathjax/"

# Widget manager: dist/ without what the AMD bundle does not use (source maps, the
# non-AMD embed.js and its chunks, libembed-amd.js); kept: embed-amd.js, its fonts.
cp -R "$NM/@jupyter-widgets/html-manager/dist" "$DEST/html-manager/"
rm -f "$DEST"/html-manager/dist/*.map "$DEST"/html-manager/dist/*embed.js \
    "$DEST/html-manager/dist/libembed-amd.js"

cp "$NM/requirejs/require.js" "$DEST/"

# Sanity check: the files _config.yml points at.
for f in mathjax/tex-mml-chtml.js html-manager/dist/embed-amd.js require.js; do
    [[ -s "$DEST/$f" ]] || { echo "error: $DEST/$f missing after install" >&2; exit 1; }
done

touch "$DEST/.done"
echo "book assets ready in $DEST ($(du -sh "$DEST" | cut -f1))"
