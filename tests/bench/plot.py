#!/usr/bin/python3
"""Draws target/bench/cost.png from target/bench/results.json (make bench).

Left: instructions per operation against core count (EL2 instructions,
solid; guest-visible instructions, dashed) for the null hypercall, local
enable, remote status and enable, and the suspend cycle with trace on
against the bare PSCI relay. Right: all-to-all throughput in requests per
million guest instructions, per core and for all cores together, against
core count.

Uses Debian's python3-matplotlib (make bench installs it).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

src = sys.argv[1] if len(sys.argv) > 1 else "target/bench/results.json"
dst = sys.argv[2] if len(sys.argv) > 2 else "target/bench/cost.png"
with open(src) as f:
    results = json.load(f)
runs = results["runs"]
cores = [r["cores"] for r in runs]

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
series = [
    ("null", "null hypercall"),
    ("local_enable", "local enable"),
    ("remote_status", "remote status"),
    ("remote_enable", "remote enable"),
    ("suspend_bare_relay", "suspend, bare relay"),
    ("suspend_trace_on", "suspend, trace on"),
]
for key, label in series:
    xs = [r["cores"] for r in runs if key in r["ops"]]
    if not xs:
        continue
    el2 = [r["ops"][key]["el2_instructions"] for r in runs if key in r["ops"]]
    guest = [r["ops"][key]["guest_instructions"] for r in runs if key in r["ops"]]
    (line,) = left.plot(xs, el2, marker="o", label=label + " (EL2)")
    left.plot(xs, guest, marker="x", linestyle="--", color=line.get_color())
left.set_xscale("log", base=2)
left.set_yscale("log")
left.set_xticks(cores, [str(c) for c in cores])
left.set_xlabel("cores")
left.set_ylabel("instructions per operation")
left.set_title("Cost per operation (solid: EL2, dashed: guest-visible)")
left.grid(True, which="both", alpha=0.3)
left.legend(fontsize=8)

tput = [r["all_to_all"]["requests_per_core_per_million_instructions"] for r in runs]
total = [r["all_to_all"]["requests_per_million_instructions"] for r in runs]
right.plot(cores, tput, marker="o", label="per core")
right.plot(cores, total, marker="s", label="all cores together")
right.legend(fontsize=8)
right.set_xscale("log", base=2)
right.set_xticks(cores, [str(c) for c in cores])
right.set_xlabel("cores")
right.set_ylabel("requests per core per million instructions")
right.set_title("All-to-all TRACE_STATUS throughput")
right.grid(True, alpha=0.3)
right.set_ylim(bottom=0)

fig.suptitle("Trace-manager hypervisor on QEMU (-icount shift=%d)" % results["icount_shift"])
fig.tight_layout()
fig.savefig(dst, dpi=100)
print("wrote", dst)
