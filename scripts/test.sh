#!/usr/bin/env bash
# The whole test suite: type check, lint/format check, every test file under test/, then a brief fuzz pass.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ]; then echo "test: node_modules missing; run 'bash scripts/setup.sh' first" >&2; exit 1; fi
npx tsc --noEmit -p .
npx biome check .
# The CLI tests run the compiled CLI when dist/ is current (test/helpers/build.ts): build it.
npx tsc -p tsconfig.build.json
mapfile -t files < <(find test -name '*.test.ts' | sort)
node --no-warnings --import tsx --test --test-concurrency=2 --test-timeout=300000 "$@" "${files[@]}"
# A brief fuzzing pass (about 5 s per target, issue 9 §4); a narrowed run (arguments) skips it.
if [ $# -eq 0 ] && [ -z "${HSMKIT_SKIP_FUZZ:-}" ]; then
  FUZZ_SECONDS="${FUZZ_SECONDS:-5}" node --no-warnings --import tsx fuzz/run.ts
fi
