#!/usr/bin/env bash
# A copy of this tree with a patch applied, for building an experiment beside the tree:
#
#   bash scripts/patched-tree.sh DIR PATCH [--src-only]
#
# DIR is emptied first. The copy holds the tracked files and the untracked ones git does not
# ignore: on the device machine the copy's git index is the session's base commit, so files
# added since are "untracked" there (and files removed since are still listed, which
# --ignore-failed-read skips). --src-only applies only the patch's src/ part (an old patch's
# docs or tests may no longer apply). Exit status 1 when the patch does not apply.
set -uo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 DIR PATCH [--src-only]" >&2; exit 2; }
DIR="$1"; PATCH="$(realpath "$2")"
INCLUDE=(); [[ "${3:-}" == --src-only ]] && INCLUDE=(--include='src/*')
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
rm -rf "$DIR" && mkdir -p "$DIR" || exit 1
git ls-files -z --cached --others --exclude-standard |
  tar --null --ignore-failed-read -cf - -T - 2>/dev/null | tar -xf - -C "$DIR" || exit 1
(cd "$DIR" && git apply "${INCLUDE[@]}" "$PATCH") || { echo "patched-tree: $PATCH does not apply" >&2; exit 1; }
