#!/usr/bin/env bash
# The project's rules as a test (ctest label "tidy"). Usage: scripts/tidy.sh [build-dir]
# Checks: formatting; banned calls and headers; direct malloc/free outside
# util/alloc.c; OS headers in core/ and voting/; "n / 2 + 1" outside voting/;
# FIXME; exported symbols start with qr_; each public header compiles alone;
# clang-tidy over src/ when the build dir has compile_commands.json.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-}
failures=0
fail() {
  echo "tidy: $*" >&2
  failures=$((failures + 1))
}

mapfile -t c_files < <(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v '^build/' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
mapfile -t src_files < <(printf '%s\n' "${c_files[@]}" | grep -E '^(src|tools|include|examples)/')

# 1. Formatting.
if ! out=$(clang-format --dry-run --Werror "${c_files[@]}" 2>&1); then
  echo "$out" | head -20 >&2
  fail "formatting differs from .clang-format (run clang-format -i on the files above)"
fi

# 2. Banned calls and headers (comments are not stripped: avoid these words followed by "(").
banned='\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|rand|srand|gettimeofday)\(|\btime\(|#include <assert\.h>'
# Lines of comment prose (" * ..." or "/* ...") may name these; code may not.
not_comment() { grep -vE '^[^:]+:[0-9]+: *(\*|/\*)'; }

if out=$(grep -nE "$banned" "${c_files[@]}" | not_comment); then
  echo "$out" >&2
  fail "banned call or header"
fi

# 3. Allocation only through util/alloc.h.
if out=$(grep -nE '\b(malloc|calloc|realloc|free)\(' "${src_files[@]}" | grep -v '^src/util/alloc.c:' | not_comment); then
  echo "$out" >&2
  fail "direct malloc/calloc/realloc/free outside src/util/alloc.c (use qr_malloc ...)"
fi

# 4. core/ and voting/ are pure: no OS headers.
os_headers='#include <(stdio|time|unistd|pthread|uv|fcntl|signal|sys/[a-z_]+|netinet/[a-z_]+|arpa/[a-z_]+)\.h>'
if out=$(grep -nE "$os_headers" src/core src/voting -r 2>/dev/null); then
  echo "$out" >&2
  fail "OS header in a pure layer (core/ or voting/)"
fi

# 5. Only voting/ knows how many votes are enough.
if out=$(grep -nE '/ *2 *\+ *1\b' "${src_files[@]}" | grep -v '^src/voting/' | not_comment); then
  echo "$out" >&2
  fail "'n / 2 + 1' outside src/voting/: ask qr_voting_* instead"
fi

# 6. No FIXME reaches main.
if out=$(git ls-files -co --exclude-standard | grep -v '^build/' | grep -v '^scripts/tidy.sh$' | xargs grep -nI 'FIXME' 2>/dev/null); then
  echo "$out" >&2
  fail "FIXME found (use TODO(#issue) or fix it)"
fi

# 7. Each public header compiles on its own.
for h in include/quorum.h include/quorum/*.h; do
  [ -f "$h" ] || continue
  rel=${h#include/}
  if ! out=$(printf '#include "%s"\n#include "%s"\n' "$rel" "$rel" | cc -std=c11 -Wall -Wextra -Werror -Wpedantic -fsyntax-only -Iinclude -x c - 2>&1); then
    echo "$out" >&2
    fail "$h does not compile on its own (or twice)"
  fi
done

# 8. Exported symbols start with qr_.
if [ -n "$build" ]; then
  so=$(find "$build" -maxdepth 1 -name 'libquorum.so*' -type f | head -1)
  if [ -n "$so" ]; then
    if out=$(nm -D --defined-only "$so" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^qr_'); then
      echo "$out" >&2
      fail "$so exports symbols without the qr_ prefix"
    fi
  else
    fail "no libquorum.so in $build"
  fi
fi

# 9. clang-tidy over the library and tools.
if [ -n "$build" ] && [ -f "$build/compile_commands.json" ] && command -v clang-tidy >/dev/null; then
  mapfile -t tidy_files < <(printf '%s\n' "${src_files[@]}" | grep -E '\.c$')
  if ! out=$(printf '%s\n' "${tidy_files[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet 2>&1); then
    echo "$out" | grep -E 'error|warning' | head -40 >&2
    fail "clang-tidy"
  fi
fi

if [ "$failures" -ne 0 ]; then
  echo "tidy: $failures check(s) failed" >&2
  exit 1
fi
echo "tidy: all checks passed"
