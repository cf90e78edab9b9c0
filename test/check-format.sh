#!/bin/sh
# check-format.sh - every C file is as clang-format 14 and .clang-format want it.
. "$(dirname "$0")/lib.sh"
cd "$top_srcdir" || exit 1
command -v clang-format >/dev/null 2>&1 || skip_all "clang-format is not installed"
files=$(ls engine/*.[ch] conf/*.[ch] proto/*.[ch] spool/*.[ch] stages/*.[ch] stages/*/*.[ch] \
	test/unit/*.[ch] test/fuzz/*.[ch] test/bench/*.[ch] 2>/dev/null | grep -v "conf_default.c$")
bad=""
for f in $files; do
	clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
is "$bad" "" "clang-format --dry-run finds nothing to change (run 'make format')"
done_testing
