#!/usr/bin/env bash
# Fetch the real test footage, OpenCV's vtest.avi (768x576, 10 fps, 795 frames), once.
#
# It ships in Debian's opencv-doc package (~96 MB download): the package is downloaded into a
# temporary directory, unpacked there, and only vtest.avi is kept, in
#   ${MONITOR_FOOTAGE_DIR:-$HOME/.cache/monitor/footage}/vtest.avi
# The path is printed on stdout. Running it again only prints the path.
set -euo pipefail

PACKAGE=opencv-doc
MEMBER=usr/share/doc/opencv-doc/examples/data/vtest.avi
dir="${MONITOR_FOOTAGE_DIR:-$HOME/.cache/monitor/footage}"
target="$dir/vtest.avi"

die() { echo "fetch-footage: $*" >&2; exit 1; }

if [[ -s "$target" ]]; then
    echo "$target"
    exit 0
fi
command -v apt-get >/dev/null 2>&1 \
    || die "apt-get not found: this script needs Debian/Ubuntu; copy vtest.avi from OpenCV's samples/data to $target"
command -v dpkg >/dev/null 2>&1 || die "dpkg not found: cannot unpack $PACKAGE"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
download="$work/download"
mkdir "$download"
# As root, apt downloads as the sandbox user _apt, which cannot write into a private temp dir; it
# then falls back to root with a warning. Let _apt write into the download dir instead.
if [[ $EUID -eq 0 ]] && id _apt >/dev/null 2>&1; then
    chmod 0755 "$work"
    chown _apt "$download"
fi

fetch() { (cd "$download" && apt-get download -q "$PACKAGE") >"$work/apt.log" 2>&1; }

if ! fetch; then
    # Fresh containers ship without package lists: refresh them once, then retry.
    if grep -qE "Unable to locate package|has no installation candidate|no candidate" "$work/apt.log"; then
        echo "fetch-footage: package lists lack $PACKAGE; running apt-get update" >&2
        apt-get update -q >"$work/update.log" 2>&1 \
            || die "apt-get update failed (as root?): $(tail -n 1 "$work/update.log")"
        fetch || die "apt-get download $PACKAGE failed: $(tail -n 1 "$work/apt.log")"
    else
        die "apt-get download $PACKAGE failed: $(tail -n 1 "$work/apt.log")"
    fi
fi

debs=("$download"/"$PACKAGE"_*.deb)
[[ -f "${debs[0]}" ]] || die "apt-get download left no $PACKAGE .deb"
dpkg -x "${debs[0]}" "$work/unpacked"
[[ -f "$work/unpacked/$MEMBER" ]] || die "${debs[0]##*/} has no $MEMBER"

mkdir -p "$dir"
cp "$work/unpacked/$MEMBER" "$target.partial"
mv "$target.partial" "$target"  # atomic: a reader never sees half a file
echo "$target"
