#!/usr/bin/env bash
# bench-table.sh FILE: prints the rows every benchmark of `make bench`
# recorded (go/internal/benchrow; tab-separated: what, figure, target,
# verdict) as one table, and how many targets were not met.
set -euo pipefail
file=${1:?usage: bench-table.sh RESULTS.tsv}
if [[ ! -s "$file" ]]; then
    echo "bench: no rows recorded in $file" >&2
    exit 1
fi
echo
echo "bench: every row next to its target ($(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))"
# column(1) (bsdextrautils) counts characters, not bytes: the targets hold ≥ and ×.
{
    printf 'what\tfigure\ttarget\tverdict\n'
    cat "$file"
} | column -t -s $'\t' -o ' | '
missed=$(awk -F'\t' '$4 == "NOT MET"' "$file" | wc -l)
echo "bench: $(wc -l < "$file") rows, $missed targets not met"
