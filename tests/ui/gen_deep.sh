#!/bin/sh
# Regenerates the 10,000-deep nesting ui cases (run from tests/ui).
# One level per line keeps the rendered diagnostics short.
set -eu
n=10000
rep() { i=0; while [ $i -lt $n ]; do printf '%s\n' "$1"; i=$((i + 1)); done; }
{
  echo "# 10,000 nested lists: reported once (E0009), not a stack overflow"
  printf 'host alpha {\n  address = "192.0.2.11"\n  deep =\n'
  rep '['; rep ']'
  printf '}\n'
} > syntax_deep_lists.infra
{
  echo "# 10,000 nested blocks: reported once (E0009), not a stack overflow"
  printf 'host alpha {\n  address = "192.0.2.11"\n'
  rep 'ssh {'; rep '}'
  printf '}\n'
} > syntax_deep_blocks.infra
{
  echo "# 10,000 nested calls, never closed"
  printf 'host alpha {\n  address = "192.0.2.11"\n  check =\n'
  rep 'f('
} > syntax_deep_unclosed.infra
