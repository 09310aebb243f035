#!/usr/bin/env python3
"""Builds the bench/run report from the JSON lines the benches printed.

Usage: report.py ROWS_FILE OUT_BASE   (machine facts come from FF_* environment variables)

Each input line is one bench row (see bench/README.md), a failed row written by bench/run
({"bench":..., "failed":"why"}) or a timing line ({"_timing": binary, "seconds": s}).
Writes OUT_BASE.md and OUT_BASE.json and prints the Markdown on stdout.
Exit code 0 even when targets are missed: the report says so plainly.
"""
import json
import os
import sys


def direction(row):
    better = row.get("better") or "higher"
    compare = row.get("compare") or "ratio"
    return better, compare


def met(row):
    """True/False when the row has a target and the figures to judge it, else None."""
    target = row.get("target")
    if target is None:
        return None
    better, compare = direction(row)
    value = row.get("ratio") if compare == "ratio" else row.get("faxflow")
    if value is None:
        return None
    return value >= target if better == "higher" else value <= target


def fmt(x):
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    ax = abs(x)
    if ax >= 100:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:,.1f}"
    return f"{x:.3g}"


def fmt_ratio(x):
    return "" if x is None else f"{x:.2f}"


def target_text(row):
    if row.get("target") is None:
        return ""
    better, compare = direction(row)
    op = ">=" if better == "higher" else "<="
    if compare == "ratio":
        return f"ratio {op} {fmt(row['target'])}"
    return f"{op} {fmt(row['target'])} {row.get('unit', '')}".rstrip()


def main():
    rows_path, out_base = sys.argv[1], sys.argv[2]
    rows, timings = [], {}
    for line in open(rows_path):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        if "_timing" in r:
            timings[r["_timing"]] = r
        else:
            rows.append(r)
    env = os.environ.get
    machine = {k: env("FF_" + k.upper(), "") for k in
               ("date", "host", "nproc", "cpu", "mem", "kernel", "load", "mode", "elapsed", "git", "kafka",
                "only", "logs")}

    md = [f"# faxflow benchmarks, {machine['date']} ({machine['mode']} run, {machine['elapsed']} s of benches)", "",
          f"Machine: {machine['nproc']} cores, {machine['cpu']}, {machine['mem']} RAM, {machine['kernel']} "
          f"(host {machine['host']}); load average at the end {machine['load']}; commit {machine['git']}.",
          f"{machine['kafka']}." + (f" Only rows containing `{machine['only']}`." if machine['only'] else ""), "",
          "`met?`: **yes** / **NO** for rows with a target; `info` for informational rows (no target).",
          "`target`: `ratio >= x` compares faxflow/raw; `<= x unit` compares the faxflow figure itself.", "",
          "| bench | faxflow | raw | unit | ratio | target | better | met? |",
          "|---|---:|---:|---|---:|---|---|---|"]
    met_rows, missed_rows, failed_rows, skipped_rows = [], [], [], []
    for r in rows:
        name = r["bench"]
        if "failed" in r:
            failed_rows.append(r)
            md.append(f"| {name} | | | | | | | **FAILED**: {r['failed']} |")
            continue
        if "skipped" in r:
            skipped_rows.append(r)
            md.append(f"| {name} | | | | | | | skipped: {r['skipped']} |")
            continue
        m = met(r)
        better, _ = direction(r)
        if m is True:
            met_rows.append(r)
        elif m is False:
            missed_rows.append(r)
        verdict = "info" if r.get("target") is None else ("yes" if m else ("**NO**" if m is False else "n/a"))
        md.append(f"| {name} | {fmt(r.get('faxflow'))} | {fmt(r.get('raw'))} | {r.get('unit', '')} | "
                  f"{fmt_ratio(r.get('ratio'))} | {target_text(r)} | {better if r.get('target') is not None else ''} | "
                  f"{verdict} |")

    judged = len(met_rows) + len(missed_rows)
    md += ["", "## Issue targets", "",
           f"**{len(met_rows)} of {judged} targets are met.** "
           f"{len(failed_rows)} bench(es) failed, {len(skipped_rows)} row(s) skipped.", ""]
    if missed_rows:
        md.append("Not met:")
        for r in missed_rows:
            ratio = direction(r)[1] == "ratio"
            value = fmt_ratio(r.get("ratio")) if ratio else f"{fmt(r.get('faxflow'))} {r.get('unit', '')}".rstrip()
            issue = f" ({r['issue']})" if r.get("issue") else ""
            md.append(f"- `{r['bench']}`{issue}: {value}, target {target_text(r)}")
        md.append("")
    if met_rows:
        md.append("Met:")
        for r in met_rows:
            ratio = direction(r)[1] == "ratio"
            value = fmt_ratio(r.get("ratio")) if ratio else f"{fmt(r.get('faxflow'))} {r.get('unit', '')}".rstrip()
            issue = f" ({r['issue']})" if r.get("issue") else ""
            md.append(f"- `{r['bench']}`{issue}: {value}, target {target_text(r)}")
        md.append("")
    if failed_rows:
        md.append("Failed benches (no figure, so their targets are not met):")
        for r in failed_rows:
            tail = f" Last log line: `{r['log_tail']}`" if r.get("log_tail") else ""
            md.append(f"- `{r['bench']}`: {r['failed']}.{tail}")
        md.append("")
    md += ["## Time per bench", "", "| binary | seconds | exit |", "|---|---:|---:|"]
    for name, t in timings.items():
        md.append(f"| {name} | {t['seconds']} | {t['rc']} |")
    md += ["", f"Logs (stderr of every bench): `{machine['logs']}/`."]
    text = "\n".join(md) + "\n"
    print(text)
    with open(out_base + ".md", "w") as f:
        f.write(text)
    with open(out_base + ".json", "w") as f:
        json.dump({"machine": machine, "results": rows, "timings": list(timings.values()),
                   "summary": {"met": len(met_rows), "judged": judged, "failed": len(failed_rows),
                               "skipped": len(skipped_rows)}}, f, indent=1)
    print(f"written: {out_base}.md and {out_base}.json", file=sys.stderr)


if __name__ == "__main__":
    main()
