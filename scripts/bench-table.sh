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
# A unit benchmark runs its body for growing b.N and records a row each
# time: the last row of a name is the figure of the final, longest run.
rows=$(awk -F'\t' '{ if (!($1 in last)) order[++n] = $1; last[$1] = $0 } END { for (i = 1; i <= n; i++) print last[order[i]] }' "$file")
{
    printf 'what\tfigure\ttarget\tverdict\n'
    printf '%s\n' "$rows"
} | column -t -s $'\t' -o ' | '
missed=$(awk -F'\t' '$4 == "NOT MET"' <<<"$rows" | wc -l)
echo "bench: $(wc -l <<<"$rows") rows, $missed targets not met"
