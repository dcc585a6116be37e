#!/usr/bin/env bash
# The reliability suites and their figures (RELIABILITY.md).
#
#   bash tests/reliability.sh                 # the short version (what `cargo test` runs in CI)
#   bash tests/reliability.sh --full          # the full version: FIELDREPORT_FULL=1, more rounds and reports
#   bash tests/reliability.sh --full --update # ...and rewrite the figures table in RELIABILITY.md
#   bash tests/reliability.sh --update        # short run: add only the rows the table lacks,
#                                             # marked "(short)"; a full run's rows are kept
#
# Each suite prints one `FIGURES <suite> key=value ...` line per test; they
# are collected through FIELDREPORT_FIGURES_FILE and assembled into one
# Markdown table (printed, and kept in target/reliability/). Seeds are in
# the log; FIELDREPORT_FAULT_SEED, FIELDREPORT_KILL_SEED and
# FIELDREPORT_DISK_SEED replay one. Mounting (full disk, read-only mount)
# and running as another user need root; without it those cases say
# "skipped: ..." in the log and in the table.
set -euo pipefail
cd "$(dirname "$0")/.."

full=0
update=0
for arg in "$@"; do
  case "$arg" in
    --full) full=1 ;;
    --update) update=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done
if [ "${FIELDREPORT_FULL:-0}" != "0" ] && [ -n "${FIELDREPORT_FULL:-}" ]; then full=1; fi
if [ "$full" = 1 ]; then export FIELDREPORT_FULL=1; mode=full; else unset FIELDREPORT_FULL; mode=short; fi

out=target/reliability
mkdir -p "$out"
figures="$PWD/$out/figures-$mode.txt"
log="$PWD/$out/log-$mode.txt"
table="$PWD/$out/table-$mode.md"
: > "$figures"
export FIELDREPORT_FIGURES_FILE="$figures"

echo "== reliability suites ($mode); log: $log"
start=$(date +%s)
status=0
# --no-fail-fast: one failing suite must not hide the others' figures; and
# each command's status counts (a group's status would be its last one's).
{
  cargo test --features sandbox --no-fail-fast --test faults --test kill --test disk --test hostile --test input_props -- --nocapture || status=$?
  cargo test --features sandbox --lib proptests || status=$?
} > "$log" 2>&1
secs=$(( $(date +%s) - start ))
grep -E '^test result|FAILED|panicked|skipped:|seed ' "$log" || true

command="bash tests/reliability.sh"
if [ "$full" = 1 ]; then command="$command --full"; fi
python3 - "$figures" "$table" "$mode" "$secs" "$command" "$status" <<'PY'
import sys, datetime, platform, os
figures, table, mode, secs, command, status = sys.argv[1:7]
rows = []
for line in open(figures):
    parts = line.split()
    if len(parts) < 2 or parts[0] != "FIGURES":
        continue
    kv = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
    rows.append((parts[1], kv))

def num(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None

used = {"mode", "seed", "accepted", "delivered", "delivered_on_fabricated_201", "dead", "dead_reasons", "evicted",
        "lost", "duplicates", "ambiguous_resends", "duplicate_uploads", "kills", "faults",
        "max_requests_per_report", "bound_for_that_report", "peak_requests_per_sec", "rate_limit"}
head = ["suite", "accepted", "delivered", "dead (reason)", "evicted (counted)", "lost", "duplicates (why)", "kills survived",
        "faults injected (by kind)", "requests/report, max (policy bound)", "peak requests in any 1 s (limit)", "other"]
lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
tot = {"accepted": 0, "delivered": 0, "dead": 0, "evicted": 0, "lost": 0, "duplicates": 0, "kills": 0, "faults": 0}
maxreq, peak = 0, 0
for suite, kv in rows:
    g = lambda k, d="—": kv.get(k, d)
    for k in tot:
        # Accepted and delivered add up only where both were measured.
        if k in ("accepted", "delivered") and not ("accepted" in kv and "delivered" in kv):
            continue
        tot[k] += num(kv.get(k)) or 0
    maxreq = max(maxreq, num(kv.get("max_requests_per_report")) or 0)
    peak = max(peak, num(kv.get("peak_requests_per_sec")) or 0)
    delivered = g("delivered")
    if num(kv.get("delivered_on_fabricated_201")):
        delivered += f" ({kv['delivered_on_fabricated_201']} on a 201 the sandbox faked)"
    dead = g("dead")
    if kv.get("dead_reasons", "-") not in ("-", ""):
        dead += f" ({kv['dead_reasons'].replace(',', ', ')})"
    dup = g("duplicates")
    why = []
    if "ambiguous_resends" in kv:
        why.append(f"≤ {kv['ambiguous_resends']} ambiguous resends counted")
    if num(kv.get("duplicate_uploads")):
        why.append(f"{kv['duplicate_uploads']} uploads re-sent after a lost answer")
    if why:
        dup += " (" + "; ".join(why) + ")"
    kinds = [f"{k[6:]}: {v}" for k, v in kv.items() if k.startswith("fault_")]
    faults = g("faults") + (" (" + ", ".join(kinds) + ")" if kinds else "")
    req = g("max_requests_per_report") + (f" ({kv['bound_for_that_report']})" if "bound_for_that_report" in kv else "")
    rate = g("peak_requests_per_sec") + (f" ({kv['rate_limit']})" if "rate_limit" in kv else "")
    other = ", ".join(f"{k}={v}" for k, v in kv.items() if k not in used and not k.startswith("fault_"))
    lines.append("| " + " | ".join([suite, g("accepted"), delivered, dead, g("evicted"), g("lost"), dup, g("kills"),
                                       faults, req, rate, other.replace("|", "/")]) + " |")
lines.append("| **all** | **%d** | **%d** | **%d** | **%d** | **%d** | **%d** | **%d** | **%d** | **%s** | **%s** | |" % (
    tot["accepted"], tot["delivered"], tot["dead"], tot["evicted"], tot["lost"], tot["duplicates"], tot["kills"], tot["faults"],
    maxreq or "—", peak or "—"))
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
outcome = "all passed" if status == "0" else f"FAILED (exit {status})"
footer = (f"\n{mode} run of {when}, {secs} s on {os.cpu_count()} cores ({platform.system()}), {outcome}. "
          f"Reproduce: `{command}`.\n")
text = "\n".join(lines) + "\n" + footer
open(table, "w").write(text)
print()
print(text)
PY

if [ "$update" = 1 ]; then
  python3 - "$table" RELIABILITY.md "$mode" <<'PY'
import sys
table, doc, mode = sys.argv[1:4]
text = open(doc).read()
begin, end = "<!-- figures:begin -->", "<!-- figures:end -->"
a, b = text.index(begin) + len(begin), text.index(end)
new = open(table).read()
if mode == "full":
    # A full run produces every row: the table is replaced whole.
    open(doc, "w").write(text[:a] + "\n" + new + text[b:])
    print(f"updated the figures in {doc}")
    sys.exit(0)
# A short run never replaces a full run's figures: it adds the rows of the
# suites the table lacks (marked "(short)"), before the **all** line, which
# keeps counting the rows it counted, and says so under the table.
def rows(block):
    out = []
    for line in block.splitlines():
        cells = line.split("|")
        if len(cells) > 2 and line.startswith("| ") and not line.startswith("| suite") \
                and not line.startswith("| **all**"):
            out.append((cells[1].strip(), line))
    return out
old_block = text[a:b]
old_rows = rows(old_block)
full_rows = {suite for suite, _ in old_rows if not suite.endswith(" (short)")}
fresh = {suite: line.replace(f"| {suite} |", f"| {suite} (short) |", 1)
         for suite, line in rows(new) if suite not in full_rows}
# Rows of an earlier short run are replaced; new suites go before **all**.
lines = [l for l in old_block.splitlines() if not l.startswith("Rows marked (short):")]
for i, l in enumerate(lines):
    for suite, line in old_rows:
        if l == line and suite.endswith(" (short)") and suite[:-8] in fresh:
            lines[i] = fresh.pop(suite[:-8])
at = next(i for i, l in enumerate(lines) if l.startswith("| **all**"))
lines[at:at] = list(fresh.values())
when = [l for l in new.splitlines() if l.startswith("short run of")]
note = ("Rows marked (short): " + (when[0] if when else "a short run")
        + " The **all** line counts the other rows only.")
block = "\n".join(lines).rstrip("\n")
if any(" (short) |" in l for l in lines):
    block += "\n" + note
block += "\n"
open(doc, "w").write(text[:a] + block + text[b:])
print(f"short rows in {doc}: " + ", ".join(s for s, _ in rows(new) if s not in full_rows))
PY
fi
exit "$status"
