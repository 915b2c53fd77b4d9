"""Execute Jupyter notebooks headless through a real kernel; used by `cargo xtask notebooks`.

    python run_notebooks.py [--kernel-cwd DIR] [--out-dir DIR [--base DIR] | --expect-failure] NOTEBOOK...

Each notebook runs in a fresh kernel (the one named in its metadata, "rust" for evcxr) started
in --kernel-cwd, or by default in the notebook's own folder (as Jupyter does), one notebook
after another. A notebook fails when a cell fails: an error output
(a compile error, a panic that aborted the cell's process, a dead kernel, a timeout), or a
"panicked at" line on stderr (a panic that was caught and printed instead). A notebook in a
folder named "solutions" also fails when one of its cells tagged "check" does not print
"PASS:" (its exercises are solved, so every check must pass); the learners' copies may print
"not yet:" with a hint, which is what their stubs are for.

Without --out-dir the executed notebooks are written back in place; with it, to that folder,
at their path relative to --base (default: just the file name).
A notebook that failed is written only to --failed-dir, never over the original.
Cell timing metadata is not recorded, so a rerun only changes what the code prints.

With --expect-failure nothing is written, and the run succeeds only if every notebook fails:
the self-test that proves failures are detected.

Prints the wall time of each notebook and of its slow cells. Exit status 0 on success, 1 if a
notebook failed (or, with --expect-failure, did not fail), 2 on bad arguments.
"""

import argparse
import os
import re
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SLOW_CELL_S = 2.0


def strip_ansi(text):
    return ANSI.sub("", text)


def first_line(source):
    for line in source.splitlines():
        if line.strip():
            return line.strip()[:70]
    return "(empty)"


def coalesce_streams(nb):
    """Merges consecutive stdout (or stderr) outputs of a cell into one. evcxr sends a message
    per line, and how lines group into messages depends on timing: merged, reruns diff less."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged = []
        for out in cell.get("outputs", []):
            prev = merged[-1] if merged else None
            if out.output_type == "stream" and prev is not None and prev.output_type == "stream" and prev.name == out.name:
                prev.text += out.text
            else:
                merged.append(out)
        cell.outputs = merged


def problems(nb):
    """Every failed cell of an executed notebook, as (cell index, text)."""
    found = []
    caught = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                # evcxr puts the rustc diagnostic in the traceback; evalue is its headline.
                evalue = out.get("evalue", "")
                text = strip_ansi("\n".join(out.get("traceback", [])))
                detail = "" if text.strip() == evalue.strip() else "\n" + text
                found.append((index, f"{out.get('ename', 'Error')}: {evalue}{detail}"))
            elif out.output_type == "stream" and out.name == "stderr" and "panicked at" in out.text:
                caught.append((index, "panic (caught, printed on stderr):\n" + out.text))
    # Error outputs first: with preserve_vars_on_panic = false a panic prints on stderr *and*
    # fails the cell, and the failure is the headline.
    return found + caught


def unpassed_checks(path, nb):
    """In a solutions copy, the cells tagged "check" that did not print PASS, as problems."""
    if os.path.basename(os.path.dirname(os.path.abspath(path))) != "solutions":
        return []
    found = []
    for index, cell in enumerate(nb.cells):
        if "check" not in cell.get("metadata", {}).get("tags", []):
            continue
        text = "".join(out.get("text", "") for out in cell.get("outputs", []) if out.output_type == "stream")
        if "PASS:" not in text or "not yet:" in text:
            found.append((index, "check cell did not print PASS in a solutions copy:\n" + text))
    return found


def run_one(path, args):
    nb = nbformat.read(path, as_version=4)
    kernel = nb.metadata.get("kernelspec", {}).get("name", "rust")
    started = {}
    cell_times = []

    def on_cell_execute(cell, cell_index, **_):
        started[cell_index] = time.monotonic()

    def on_cell_executed(cell, cell_index, **_):
        cell_times.append((cell_index, time.monotonic() - started.get(cell_index, time.monotonic())))

    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=args.timeout,
        startup_timeout=args.startup_timeout,
        record_timing=False,
        allow_errors=False,
        resources={"metadata": {"path": args.kernel_cwd or os.path.dirname(os.path.abspath(path))}},
        on_cell_execute=on_cell_execute,
        on_cell_executed=on_cell_executed,
    )
    t0 = time.monotonic()
    failure = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        failure = f"{type(e).__name__}: {strip_ansi(str(e))}"
    except Exception as e:  # A kernel that does not start, a broken notebook file, ...
        failure = f"{type(e).__name__}: {e}"
    wall = time.monotonic() - t0
    coalesce_streams(nb)
    found = problems(nb)
    if not failure and not found:
        found = unpassed_checks(path, nb)
    if failure and not found:
        found.append((None, failure))
    return nb, wall, sorted(cell_times), found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--kernel-cwd", help="working directory of each kernel (default: the notebook's folder)")
    parser.add_argument("--out-dir", help="write executed notebooks here instead of in place")
    parser.add_argument("--base", help="with --out-dir: keep each notebook's path relative to this folder")
    parser.add_argument("--failed-dir", help="write notebooks that failed here (default: nowhere)")
    parser.add_argument("--expect-failure", action="store_true", help="succeed only if every notebook fails")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--startup-timeout", type=int, default=180, help="seconds for the kernel to start")
    args = parser.parse_args()
    if args.kernel_cwd:
        args.kernel_cwd = os.path.abspath(args.kernel_cwd)

    bad = []
    total = 0.0
    for path in args.notebooks:
        name = os.path.basename(path)
        if args.base:
            relative = os.path.relpath(os.path.abspath(path), os.path.abspath(args.base))
            if not relative.startswith(".."):
                name = relative
        print(f"notebooks: running {path}", flush=True)
        nb, wall, cell_times, found = run_one(path, args)
        total += wall
        for index, secs in cell_times:
            if secs >= SLOW_CELL_S:
                print(f"    cell {index:>2} {secs:6.1f} s  {first_line(nb.cells[index].source)}", flush=True)
        failed = bool(found)
        if args.expect_failure:
            if failed:
                index, text = found[0]
                headline = strip_ansi(text).strip().splitlines()[0]
                print(f"  {name}: failed as expected ({wall:.1f} s), cell {index}: {headline}")
            else:
                print(f"  {name}: ran cleanly but was expected to fail ({wall:.1f} s)")
                bad.append(name)
            continue
        for index, text in found:
            where = f"cell {index}" if index is not None else "kernel"
            print(f"  {name}: {where} failed:\n{text}\n", file=sys.stderr)
        if failed:
            bad.append(name)
        # A failed notebook is not written over the committed one: it goes to --failed-dir.
        out_dir = args.failed_dir if failed else args.out_dir
        out = os.path.join(out_dir, name) if out_dir else (None if failed else path)
        if out:
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
            nbformat.write(nb, out)
        status = "FAILED" if failed else "ok"
        print(f"  {name}: {status} in {wall:.1f} s -> {out or '(not written)'}", flush=True)

    print(f"notebooks: {len(args.notebooks)} run in {total:.1f} s", flush=True)
    if bad:
        what = "did not fail" if args.expect_failure else "failed"
        print(f"notebooks: {what}: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
