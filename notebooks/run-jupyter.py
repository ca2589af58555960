#!/usr/bin/python3
"""Executes a Jupyter notebook headless with nbclient against an installed kernel, as CI does.

Usage: run-jupyter.py NOTEBOOK OUT [KERNEL]

Every cell runs in order; a cell error fails the run (exit 1), except in cells tagged raises-exception, whose
error must be the command line's one line ("error: <what>; <name>=<value>"), not a stack trace. The executed
notebook (with its outputs) is written to OUT; the committed notebook stays without outputs.
"""
import datetime
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main(argv):
    if len(argv) not in (3, 4):
        print("error: usage: run-jupyter.py NOTEBOOK OUT [KERNEL]; arguments=%d" % (len(argv) - 1), file=sys.stderr)
        return 2
    path, out = argv[1], argv[2]
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    kernel = argv[3] if len(argv) == 4 else notebook.metadata.kernelspec.name
    client = NotebookClient(notebook, kernel_name=kernel, timeout=600, startup_timeout=120,
                            resources={"metadata": {"path": "."}})
    start = time.monotonic()
    failed = None
    try:
        client.execute()
    except CellExecutionError as e:
        failed = str(e)
    nbformat.write(notebook, out)
    seconds = time.monotonic() - start
    if failed is not None:
        print(failed, file=sys.stderr)
        print("error: a cell of %s failed; executed notebook=%s" % (path, out), file=sys.stderr)
        return 1
    problems = []
    code_cells = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        code_cells += 1
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if "raises-exception" in cell.metadata.get("tags", []):
            if len(errors) != 1:
                problems.append("cell %d (%s) must fail with one error; errors=%d" % (index, cell.id, len(errors)))
                continue
            traceback = errors[0].traceback
            if len(traceback) != 1 or not traceback[0].startswith("error: ") or "\tat " in traceback[0]:
                problems.append("cell %d (%s) must show one line 'error: ...', not a stack trace; traceback=%r"
                                % (index, cell.id, traceback))
    for problem in problems:
        print("error: " + problem, file=sys.stderr)
    if problems:
        return 1
    for index, cell in enumerate(notebook.cells):
        timing = cell.metadata.get("execution", {})
        if cell.cell_type == "code" and "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            took = parse(timing["shell.execute_reply"]) - parse(timing["iopub.execute_input"])
            print("  cell %2d %6.1f s  %s" % (index, took.total_seconds(), cell.source.split("\n")[0][:70]))
    print("executed %d code cells of %s with kernel %s in %.1f s (kernel start included); outputs in %s"
          % (code_cells, path, kernel, seconds, out))
    return 0


def parse(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
