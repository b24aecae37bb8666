"""``python -m pytest_i2v ab``: base and head measured interleaved in one job, on one machine.

    python -m pytest_i2v ab --base REF [--head REF] [--rounds N] [--min-effect PCT] [--out DIR]
        [--fixed-rounds] [--full-runs] [--calibrate] [--baseline-dir DIR] [-- pytest args]

Why: a stored baseline comes from other days, processes and machine states; between processes the
times move by several per cent. Running base and head alternately in the same job lets slow drift
cancel out, and pairing the rounds removes what the two sides share.

How it runs:

- The base is checked out with ``git worktree add --detach`` in a temporary directory; so is the
  head when ``--head`` names a ref. Without ``--head`` the head is the working tree as it is.
- A quick ``pytest --collect-only`` per side first: an i2v test (an ``i2v`` mark or the ``i2v_run``
  fixture) that only one side has is a usage error that names it.
- Round r runs one fresh pytest process per side: (base, head) when r is even, (head, base) when r
  is odd (ABBA), each with ``PYTHONPATH=<its tree>`` first, so that each side imports its own
  pytest_i2v and its own tests. Both get the same pytest args, hence the same profile and device.
- The runs never read or write the project's baselines (an empty ``--i2v-baseline-dir`` per
  process; ``--i2v-update-baselines`` is refused) and write their reports into the temporary
  directory.
- Sequential (the default; ``--fixed-rounds`` turns it off): after every round the job judges each
  test at that look (``ab.sequential``: Lan-DeMets spending); a decided test leaves the job
  (``--deselect`` in the later processes) and the job ends when every test is decided or
  ``--rounds`` are spent. The calibration (``--calibrate``: base against base, stored in the
  profile's baseline file) gives each test its spread with its real degrees of freedom, where it
  matches the machine and software.
- ``ab.rounds.compare_rounds`` pairs the rounds; ``<out>/ab.json``, ``ab.md`` and ``ab.html`` are
  written, the Markdown is printed, and the exit code is 1 when a test regressed or its output
  changed (``ab.output_check``: round 1's head output against the base's), else 0.
- From the second round on, each completed round rewrites those three files (atomically) from the
  rounds so far, marked "partial: 3 of 16 rounds done": a job killed at a CI time limit, or stopped
  by a failed process, still leaves the verdicts of its complete rounds. The final write replaces
  them. An earlier job's files in the same ``--out`` are removed first: never taken for this job's.
- Each process's output is kept in ``<out>/logs/``; its results JSON in
  ``<out>/<side>-<round>.json``. A process that exits with anything but 0 or 1 (a usage or
  internal error) stops the job.

The dirty-worktree rule: without ``--head`` uncommitted changes to tracked files are measured as
the head (the meta says so). With ``--head`` the working tree is not measured at all, so a dirty
one is ambiguous (the user may expect their edits to count): that is a usage error; commit or
stash the changes, or drop ``--head``. Untracked files do not count as changes.

Whatever happens (a usage error after the worktrees exist, a failed process, Ctrl-C) the worktrees
are removed (``git worktree remove --force``, then ``git worktree prune``) and the temporary
directory deleted. Nothing is written to ``--out`` before the collection pass agrees.

The package, from the top: ``bisect`` (``python -m pytest_i2v bisect``: the first commit that
differs, on these worktrees and jobs); ``job`` (the rounds, judged after each, and the written
comparison); ``collection`` (the collection pass); ``machine_calibration`` (the job's calibration,
read and stored); ``options`` (what the user asked for, checked); ``workspace`` (the refs and the
worktrees); ``processes`` (each pytest process, its argv, environment and log); ``meta`` (the ABBA
order, the machine, the unstable runs); ``outputs`` (ab.json, ab.md, ab.html); ``output_check``
(round 1's videos compared); ``rounds`` (the rounds' documents -> per-test verdicts); ``paired``
(one metric's paired verdict); ``sequential`` (the looks' error spending). The calibration is
stored with the baselines (``pytest_i2v.verdict.ab_calibration``)."""

from __future__ import annotations

from pytest_i2v.ab.job import ABJob, ABOutcome, run_ab
from pytest_i2v.ab.options import ABOptions
from pytest_i2v.ab.processes import ABProcessFailed, ProcessRun

__all__ = ["ABJob", "ABOptions", "ABOutcome", "ABProcessFailed", "ProcessRun", "run_ab"]
