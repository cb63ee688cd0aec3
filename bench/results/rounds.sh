# Sourced by the interleaved benchmark scripts here: `results NAME` starts NAME.jsonl beside
# this file (emptied) and records the machine's facts in NAME.machine.txt; `cmd | tag SIDE
# ROUND` appends each JSON line a benchmark prints (bare or after `JSON `) with its side and round.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

results() {
  out="$here/$1.jsonl"
  { nproc; lscpu | grep -E "Model name|Flags" | cut -c1-200; free -g | head -2; } > "$here/$1.machine.txt"
  : > "$out"
}

tag() { python3 -c "
import json,sys
for l in sys.stdin:
    l=l.strip()
    if l.startswith('JSON '): l=l[5:]
    if not l.startswith('{'): continue
    d=json.loads(l); d['side']='$1'; d['round']=$2; print(json.dumps(d))" >> "$out"; }
