#!/usr/bin/env bash
# The whole test suite: type check, lint/format check, then every test file under test/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ]; then echo "test: node_modules missing; run 'bash scripts/setup.sh' first" >&2; exit 1; fi
npx tsc --noEmit -p .
npx biome check .
# The CLI tests run the compiled CLI when dist/ is current (test/helpers/build.ts): build it.
npx tsc -p tsconfig.build.json
mapfile -t files < <(find test -name '*.test.ts' | sort)
exec node --no-warnings --import tsx --test --test-concurrency=2 --test-timeout=300000 "$@" "${files[@]}"
