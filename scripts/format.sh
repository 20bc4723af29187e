#!/usr/bin/env bash
# Formats the C++ sources with .clang-format (clang-format 14, Debian 12's). --check changes
# nothing and fails listing the files that differ, for CI or a pre-commit hook.
set -euo pipefail
cd "$(dirname "$0")/.."
FORMAT=${CLANG_FORMAT:-$(command -v clang-format-14 || command -v clang-format || true)}
[ -n "$FORMAT" ] || { echo "format.sh: clang-format not found (apt-get install clang-format)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.cpp' '*.h')
if [ "${1:-}" = "--check" ]; then
  bad=()
  for f in "${files[@]}"; do "$FORMAT" --style=file "$f" | cmp -s - "$f" || bad+=("$f"); done
  [ ${#bad[@]} -eq 0 ] && { echo "format.sh: ${#files[@]} files formatted"; exit 0; }
  printf 'format.sh: not formatted (scripts/format.sh fixes them): %s\n' "${bad[@]}" >&2
  exit 1
fi
"$FORMAT" --style=file -i "${files[@]}"
