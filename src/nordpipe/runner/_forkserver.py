"""Imported by the local executor's forkserver alone (``set_forkserver_preload``), never elsewhere.

Local workers are forked from a forkserver, which is started once per stage process and has
the stage's modules imported -- the CLI entry point and, with two or more workers (the CLI
imports lazily), the modules of the pipeline's steps and datatrove's executor
(``executors.worker_modules``) -- so a worker starts in milliseconds instead of re-importing
them (~1 s a worker and phase when spawned; measured, ``benchmarks/results/contract.md``). This
module is preloaded last. The
forkserver is a child of the stage; importing this module there makes it die with the stage
(``PR_SET_PDEATHSIG``), and each worker dies with the forkserver (``_worker_main``), so a stage
killed with -9 leaves no process behind that could go on writing into its OUTPUT.
"""

from nordpipe.runner.processes import die_with_parent

die_with_parent()
