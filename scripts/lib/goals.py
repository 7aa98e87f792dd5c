"""Records one of issue 12's goal rows as measured by a benchmark script, for the summary that
`scripts/bench` puts at the top of BENCHMARKS.md (`scripts/lib/goals-section` renders it).

Each row is a tab-separated line appended to the file named by $DELTASYNC_GOALS: the goal
row's text, the figure with its baseline in the same run, the bound computed in the same run,
`yes` or `no`, and the BENCHMARKS.md section with the details. Nothing is written when the
variable is not set (a script run on its own). examples/bench writes the same format.

The scripts' Python takes it with `sys.path.insert(0, os.environ["DELTASYNC_LIB"])`.
"""

import os


def goal(row, measured, bound, met, section):
    """Appends one goal row (see the module's doc) when $DELTASYNC_GOALS is set."""
    fields = [row, measured, bound, "yes" if met else "no", section]
    for field in fields:
        if "\t" in field or "\n" in field:
            raise ValueError(f"a goal field holds a tab or a newline: {field!r}")
    path = os.environ.get("DELTASYNC_GOALS")
    if path:
        with open(path, "a") as f:
            f.write("\t".join(fields) + "\n")
