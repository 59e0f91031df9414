"""Running the five notebooks as one pipeline (what they write and record: :mod:`journey_analysis.artifacts`).

This module owns:

* :func:`run_pipeline`: executes ``01_define_objectives`` .. ``05_analyze`` in order with papermill
  (explicit kernel name), builds the run aside in ``reports/.tmp-<run-id>/`` and moves it to
  ``reports/<run-id>/`` only when every notebook and the report are complete; a failed run goes to
  ``reports/failed/<run-id>/`` (the failed notebook keeps papermill's error banner) and raises one
  :class:`~journey_analysis.errors.JourneyError` whose message is one line.
* :func:`subsample_customers`: the seeded sample of a quick run (``--param n_customers=500``).
* :func:`write_student_notebooks`: copies of the notebooks without the cells tagged ``solution``.

Each notebook's kernel is started while the notebook before it runs (:class:`KernelAhead`): it boots and
imports what the notebook will import on the otherwise idle second core, so the next notebook starts at once.

papermill, nbformat, matplotlib and IPython are imported inside the functions that use them.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from journey_analysis.artifacts import atomic_write_text, jsonable, run_folder
from journey_analysis.engines import dispatch
from journey_analysis.errors import JourneyError

#: The notebooks of a run, in order (file stems in ``notebooks/``).
NOTEBOOKS: tuple[str, ...] = ("01_define_objectives", "02_gather", "03_segment", "04_map", "05_analyze")
#: Preferred Jupyter kernel (``make install`` registers it); ``python3`` is the fallback.
KERNEL_NAME = "journey-analysis"
#: Cell tags: removed from student copies / left out of report.html.
SOLUTION_TAG = "solution"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}$")
#: Arguments of every notebook kernel: its own warnings (e.g. "TCP without encryption" on a local
#: kernel) would clutter scheduled-run logs; no history file (as nbclient starts kernels).
KERNEL_ARGUMENTS: tuple[str, ...] = ("--IPKernelApp.log_level=ERROR", "--HistoryManager.hist_file=:memory:")
#: Libraries the package's calls in a notebook import on first use (heavy imports live inside functions
#: so that ``import journey_analysis`` stays light), seen with ``python -X importtime`` on a run of the
#: demo config at 100,000 customers. A kernel started ahead imports them with the notebook's import cell.
FIRST_USE_IMPORTS: dict[str, tuple[str, ...]] = {
    "02_gather": ("pyarrow.compute", "sklearn.linear_model", "spacy", "lingua"),
    "03_segment": ("sklearn.cluster", "sklearn.metrics", "matplotlib.pyplot", "seaborn"),
    "04_map": ("scipy.stats", "matplotlib.pyplot", "seaborn"),
    "05_analyze": ("scipy.stats", "sklearn.linear_model", "spacy", "lingua", "matplotlib.pyplot", "seaborn"),
}

log = logging.getLogger("journey_analysis.runner")


# --------------------------------------------------------------------------------------------------
# helpers used inside notebooks
# --------------------------------------------------------------------------------------------------


@dispatch
def subsample_customers(events, customers=None, feedback=None, n_customers: int | None = None,
                        random_state: int = 0):
    """A seeded sample of ``n_customers`` customers (all when None or when there are fewer).

    Customers are drawn without replacement from the sorted distinct ``customer_id`` of ``events`` (of
    ``customers``, else ``feedback``, when there is no event log)
    with ``numpy.random.default_rng(random_state)``; returns ``(events, customers, feedback)`` keeping
    only their rows (feedback without a customer id is kept). Used for quick runs
    (``--param n_customers=500``). Events on Spark: :func:`journey_analysis.engines.spark.subsample_customers`.
    """
    import numpy as np

    pool = events if len(events) else customers if customers is not None else feedback  # no event log: customers
    ids = np.sort(pool["customer_id"].dropna().astype(str).unique()) if pool is not None and "customer_id" in pool else []
    if n_customers is None or n_customers >= len(ids):
        return events, customers, feedback
    keep = set(np.random.default_rng(random_state).choice(ids, size=int(n_customers), replace=False))
    events = events[events["customer_id"].isin(keep)].reset_index(drop=True)
    if customers is not None:
        customers = customers[customers["customer_id"].isin(keep)].reset_index(drop=True)
    if feedback is not None:
        feedback = feedback[feedback["customer_id"].isin(keep) | feedback["customer_id"].isna()].reset_index(drop=True)
    return events, customers, feedback


# --------------------------------------------------------------------------------------------------
# kernels, run ids
# --------------------------------------------------------------------------------------------------
def kernel_name() -> str:
    """``"journey-analysis"`` when that kernel is registered (``make install``), else ``"python3"``.

    Raises :class:`JourneyError` when neither is available.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    for name in (KERNEL_NAME, "python3"):
        if name in specs:
            return name
    raise JourneyError("No Jupyter kernel to run the notebooks with (neither 'journey-analysis' nor 'python3').",
                       fix="Run `make install` (it registers the 'journey-analysis' kernel).")


def new_run_id(config_name: str, now: datetime | None = None) -> str:
    """Default run id: ``<config name>-<UTC time YYYYmmddTHHMMSSZ>``."""
    now = now or datetime.now(timezone.utc)
    return f"{config_name}-{now:%Y%m%dT%H%M%SZ}"


@dataclass
class RunResult:
    """What :func:`run_pipeline` produced."""

    run_id: str
    folder: Path                   # reports/<run-id>/
    report: Path                   # reports/<run-id>/report.html
    processed: Path                # data/processed/<run-id>/
    index: Path                    # reports/index.html
    records: dict = field(default_factory=dict)      # every recorded value, by name
    seconds: dict = field(default_factory=dict)      # wall time per notebook, and "total"


def _one_line(text: str, limit: int = 400) -> str:
    s = " | ".join(line.strip() for line in str(text).splitlines() if line.strip())
    s = re.sub(r"\x1b\[[0-9;]*m", "", s)   # ANSI colours of tracebacks
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _file_logger(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                           "%Y-%m-%dT%H:%M:%S%z"))
    handler.setLevel(logging.INFO)
    for name in ("journey_analysis", "papermill"):
        lg = logging.getLogger(name)
        lg.addHandler(handler)
        if lg.level == logging.NOTSET or lg.level > logging.INFO:
            lg.setLevel(logging.INFO)
    return handler


def _drop_logger(handler: logging.Handler) -> None:
    for name in ("journey_analysis", "papermill"):
        logging.getLogger(name).removeHandler(handler)
    handler.close()


def _fail(tmp: Path, reports_dir: Path, run_id: str, message: str, notebook: Path | None) -> JourneyError:
    """Move the half-built run to reports/failed/<run-id>/ and return the one-line error to raise."""
    failed_root = reports_dir / "failed"
    failed_root.mkdir(parents=True, exist_ok=True)
    dest = failed_root / run_id
    if dest.exists():
        shutil.rmtree(dest)
    log.error(message)
    atomic_write_text(tmp / "failure.json", json.dumps({
        "run_id": run_id, "failed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "message": message, "notebook": notebook.name if notebook else None}, indent=2))
    os.replace(tmp, dest)
    where = f"; see {dest / notebook.name}" if notebook else f"; see {dest / 'run.log'}"
    return JourneyError(f"Run {run_id} failed: {message}{where}")


def _import_papermill():
    """papermill, imported without ``rfc3987_syntax``.

    papermill imports nbformat, nbformat imports jsonschema, and jsonschema imports rfc3987_syntax when it
    is installed (it comes with the Jupyter stack) only to check the "iri" string format, which no notebook
    schema uses (nbformat validates with fastjsonschema); importing it compiles 39 lark grammars, 2.3 CPU-s
    of every ``journey run``. When jsonschema is not imported yet, the import of rfc3987_syntax fails for
    that moment (jsonschema skips the "iri" check when it cannot import it) and works again afterwards.
    """
    if "jsonschema" not in sys.modules and "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # "import" raises ImportError
        try:
            import papermill
        finally:
            if sys.modules.get("rfc3987_syntax", False) is None:
                del sys.modules["rfc3987_syntax"]
    import papermill

    return papermill


def _shutdown(config) -> str:
    """How the kernel of a notebook that has run is stopped: ``"immediate"`` (killed once every cell has run
    and its outputs are in: every artifact is already written atomically, and a graceful exit only frees
    memory, 0.6-2.5 s per notebook at 100,000 customers) on the pandas engine; ``"graceful"`` on Spark, so
    that the kernel's exit stops its Spark session and JVM the usual way."""
    return "graceful" if getattr(config, "engine", "pandas") == "spark" else "immediate"


def notebook_imports(path) -> tuple[str, ...]:
    """The modules the first code cell of the notebook at ``path`` imports (``import a.b``, ``from a.b import
    c``), in order; relative imports and a cell that does not parse are left out."""
    import ast

    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cell = next((c for c in nb.get("cells", []) if c.get("cell_type") == "code"), None)
    if cell is None:
        return ()
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return tuple(dict.fromkeys(names))


def warm_imports(modules) -> None:
    """Import ``modules`` and bind no name (run in a kernel started ahead of its notebook). A module that
    fails to import is skipped: the notebook's own import then reports it in its cell, as without warming."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - reported by the notebook's own import
            pass


class KernelAhead:
    """The kernel of one notebook, started before its turn.

    Creating one launches the kernel process (milliseconds: the process boots on its own) with the
    notebook's working directory and :data:`KERNEL_ARGUMENTS`; at startup the kernel runs
    :func:`warm_imports` over the modules of the notebook's import cell and its :data:`FIRST_USE_IMPORTS`
    (a call that binds no name), before it answers papermill. The notebook then runs in that kernel
    (:meth:`execute`), which is stopped as ``shutdown`` says once every cell has run; :meth:`discard`
    stops a kernel whose notebook never ran (an earlier notebook failed, the run was interrupted).
    A fresh kernel per notebook, as before: nothing but imported modules is there before the first cell.
    """

    def __init__(self, notebook: Path, kernel: str, cwd: Path):
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        self.notebook = Path(notebook)
        modules = notebook_imports(self.notebook) + FIRST_USE_IMPORTS.get(self.notebook.stem, ())
        self.modules = tuple(dict.fromkeys(modules))
        warm = (f"__import__('journey_analysis.runner', fromlist=['warm_imports'])"
                f".warm_imports({list(self.modules)!r})")
        self.km = AsyncKernelManager(kernel_name=kernel)
        run_sync(self.km.start_kernel)(extra_arguments=[*KERNEL_ARGUMENTS, f"--IPKernelApp.exec_lines={warm}"],
                                       cwd=str(cwd))

    def execute(self, pm, src: Path, out: Path, shutdown: str, **kwargs):
        """Run the notebook ``src`` (papermill, engine :data:`ENGINE`) in this kernel, writing ``out``."""
        _register_engine(pm)
        try:
            return pm.execute_notebook(str(src), str(out), engine_name=ENGINE, km=self.km,
                                       shutdown_kernel=shutdown, **kwargs)
        finally:
            self.discard()  # no-op when papermill has stopped it; a kernel left by a failure is killed

    def discard(self) -> None:
        """Stop the kernel now if it is still running (and remove its connection file)."""
        from jupyter_core.utils import run_sync

        km, self.km = self.km, None
        if km is None:
            return
        if run_sync(km.is_alive)():
            run_sync(km.shutdown_kernel)(now=True)  # also removes its connection file
        else:
            run_sync(km.cleanup_resources)()


#: The papermill engine of :class:`KernelAhead`: papermill's own nbclient engine, except that it stops the
#: kernel it was given (papermill stops only kernels it started, and leaves a given one's channels open)
#: and writes the executed notebook as :data:`SAVE_EVERY_S` says.
ENGINE = "journey-kernel-ahead"


#: The executed notebook is written when it starts, when it ends (also when a cell fails or its kernel dies:
#: papermill writes it in a ``finally``) and in between at most every this many seconds, instead of before
#: and after every cell (two writes of the whole notebook per cell cost about 2 s of a run at 100,000
#: customers, on the critical path between cells).
SAVE_EVERY_S = 10.0


def _register_engine(pm) -> None:
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
    from papermill.utils import merge_kwargs, remove_args

    class _Manager(NotebookExecutionManager):
        _always = False

        def save(self, **kwargs):
            if self._always or (self.now() - self.last_save_time).total_seconds() >= SAVE_EVERY_S:
                super().save(**kwargs)

        def notebook_start(self, **kwargs):
            self._always = True
            try:
                super().notebook_start(**kwargs)
            finally:
                self._always = False

        def notebook_complete(self, **kwargs):
            self._always = True
            super().notebook_complete(**kwargs)

    class _GivenKernelEngine(NBClientEngine):
        @classmethod
        def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                             autosave_cell_every=30, **kwargs):
            # as papermill's Engine.execute_notebook (2.x), with _Manager
            nb_man = _Manager(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                              autosave_cell_every=autosave_cell_every)
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            # as NBClientEngine.execute_managed_notebook (papermill 2.x), then cleanup_kc=True
            kwargs = remove_args(["input_path"], **kwargs)
            safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
            final_kwargs = merge_kwargs(safe_kwargs, timeout=execution_timeout or kwargs.get("timeout"),
                                        startup_timeout=start_timeout, kernel_name=kernel_name,
                                        log=logging.getLogger("papermill"), log_output=log_output,
                                        stdout_file=stdout_file, stderr_file=stderr_file)
            return PapermillNotebookClient(nb_man, **final_kwargs).execute(cleanup_kc=True)

    papermill_engines.register(ENGINE, _GivenKernelEngine)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire_lock(reports_dir: Path, run_id: str) -> Path:
    """Take the lock ``reports/.lock-<run-id>`` (created exclusively; holds the pid).

    A second run with the same run id while the first is alive is refused with a
    :class:`JourneyError`; a lock left by a process that no longer exists is taken over."""
    lock = Path(reports_dir) / f".lock-{run_id}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pid = -1
            if pid > 0 and _pid_alive(pid):
                raise JourneyError(f"Run {run_id!r} is already running (process {pid}).", file=lock,
                                   fix="Wait for it to finish, or choose another --run-id. If no such run is "
                                       "going on, delete the lock file.") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        return lock
    raise JourneyError(f"Could not take the lock for run {run_id!r}.", file=lock, fix="Try again.")


def run_pipeline(config_path, run_id: str | None = None, reports_dir=None, processed_dir=None,
                 extra_parameters: dict | None = None, progress: bool = True) -> RunResult:
    """Run the five notebooks on a config and write ``reports/<run-id>/`` and ``data/processed/<run-id>/``.

    Parameters injected into every notebook: ``config_path`` (absolute), ``run_id``, ``processed_dir``
    (absolute), ``interactive=False`` and ``extra_parameters`` (for example ``{"n_customers": 500}``).
    Notebooks run with the kernel from :func:`kernel_name`, working directory ``notebooks/``, a
    papermill progress bar each unless ``progress=False``; a kernel is stopped as :func:`_shutdown` says
    once its notebook has run; ``run.log`` records parameters, timings and errors.

    When every notebook has run, the runner writes (still in ``reports/.tmp-<run-id>/``) the executed
    notebooks, ``figures/<name>.png``, ``journey_map.csv``, ``stage_metrics.json`` (per-stage figures with
    their uncertainty, for comparisons), ``run.json`` (headline figures) and ``report.html``; then moves
    the folder to ``reports/<run-id>/`` and rewrites ``reports/index.html``.

    On failure (a cell raised, the kernel died, the report could not be written) the half-built run is
    moved to ``reports/failed/<run-id>/`` (failed notebook with papermill's error banner, ``run.log``,
    ``failure.json``), earlier reports are left as they were, and a :class:`JourneyError` is raised whose
    message is one line: the notebook, the cell's error and where to look.
    """
    from journey_analysis import config as cfg
    from journey_analysis import report as rep

    started = time.perf_counter()
    config_path = Path(config_path).resolve()
    config = cfg.load_config(config_path)          # bad config -> JourneyError before anything is written
    reports_dir = Path(reports_dir or cfg.REPORTS_DIR).resolve()
    processed_dir = Path(processed_dir or cfg.PROCESSED_DIR).resolve()
    run_id = run_id or new_run_id(config.name)
    if not _RUN_ID.match(run_id) or run_id in ("failed", "index.html"):
        raise JourneyError(f"Run id {run_id!r} is not usable as a folder name.",
                           expected="letters, digits, '_', '-' or '.', starting with a letter or digit",
                           fix="Choose another --run-id (or leave it out for <config>-<UTC time>).")
    final = reports_dir / run_id
    if final.exists():
        raise JourneyError(f"A report for run id {run_id!r} already exists.", file=final,
                           fix="Choose another --run-id, or delete that folder to replace it.")
    kernel = kernel_name()
    reports_dir.mkdir(parents=True, exist_ok=True)
    lock = acquire_lock(reports_dir, run_id)
    try:
        return _run_locked(config, config_path, run_id, reports_dir, processed_dir, extra_parameters,
                           progress, kernel, started)
    finally:
        lock.unlink(missing_ok=True)


def _run_locked(config, config_path, run_id, reports_dir, processed_dir, extra_parameters, progress, kernel,
                started) -> RunResult:
    from journey_analysis import config as cfg

    sources = [cfg.NOTEBOOKS_DIR / f"{stem}.ipynb" for stem in NOTEBOOKS]
    ahead = [KernelAhead(sources[0], kernel, cfg.NOTEBOOKS_DIR)]  # it boots while papermill is imported
    try:
        return _run_notebooks(config, config_path, run_id, reports_dir, processed_dir, extra_parameters, progress,
                              kernel, started, sources, ahead)
    finally:
        for k in ahead:  # a failure or an interrupt: kernels started for notebooks that did not run
            k.discard()


def _run_notebooks(config, config_path, run_id, reports_dir, processed_dir, extra_parameters, progress, kernel,
                   started, sources, ahead) -> RunResult:
    """The run itself. ``ahead`` holds the kernels started for the notebooks still to run, in order (on
    entry, the first notebook's); each notebook's kernel leaves it once the notebook has run."""
    from journey_analysis import config as cfg
    from journey_analysis import report as rep

    pm = _import_papermill()
    from papermill.exceptions import PapermillExecutionError

    final = reports_dir / run_id
    if final.exists():
        raise JourneyError(f"A report for run id {run_id!r} already exists.", file=final,
                           fix="Choose another --run-id, or delete that folder to replace it.")
    tmp = reports_dir / f".tmp-{run_id}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    processed = run_folder(processed_dir, run_id)
    handler = _file_logger(tmp / "run.log")
    parameters = {"config_path": str(config_path), "run_id": run_id, "processed_dir": str(processed_dir),
                  "interactive": False, **(extra_parameters or {})}
    seconds: dict[str, float] = {}
    try:
        log.info("run %s: config %s, kernel %s, parameters %s", run_id, config_path, kernel,
                 json.dumps(jsonable(parameters)))
        executed: list[Path] = []
        for i, (stem, src) in enumerate(zip(NOTEBOOKS, sources), 1):
            out = tmp / f"{stem}.ipynb"
            if progress:
                print(f"[{i}/{len(NOTEBOOKS)}] {stem}", file=sys.stderr, flush=True)
            log.info("notebook %s: start", stem)
            t0 = time.perf_counter()
            try:
                if i < len(NOTEBOOKS):  # the next notebook's kernel boots while this one runs
                    ahead.append(KernelAhead(sources[i], kernel, cfg.NOTEBOOKS_DIR))
                ahead[0].execute(pm, src, out, _shutdown(config), parameters=parameters, kernel_name=kernel,
                                 progress_bar=progress, log_output=False, cwd=str(cfg.NOTEBOOKS_DIR),
                                 extra_arguments=list(KERNEL_ARGUMENTS))
            except PapermillExecutionError as exc:
                msg = f"{stem} cell {exc.exec_count}: {exc.ename}: {_one_line(exc.evalue)}"
                raise _fail(tmp, reports_dir, run_id, msg, out) from None
            except Exception as exc:  # kernel died, notebook missing, papermill problem
                msg = f"{stem}: {type(exc).__name__}: {_one_line(exc)}"
                raise _fail(tmp, reports_dir, run_id, msg, out if out.exists() else None) from None
            ahead.pop(0)
            seconds[stem] = round(time.perf_counter() - t0, 2)
            log.info("notebook %s: done in %.1f s", stem, seconds[stem])
            executed.append(out)
        try:
            built = rep.build_run_outputs(tmp, executed, config, run_id, processed, reports_dir,
                                          seconds=seconds)
        except Exception as exc:
            msg = f"report: {type(exc).__name__}: {_one_line(exc)}"
            raise _fail(tmp, reports_dir, run_id, msg, None) from None
        seconds["total"] = round(time.perf_counter() - started, 2)
        log.info("run %s complete in %.1f s", run_id, seconds["total"])
    except BaseException as exc:  # interrupted (Ctrl-C, SIGTERM as KeyboardInterrupt): no half-built run left
        if not isinstance(exc, JourneyError) and tmp.exists():
            _drop_logger(handler)
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _drop_logger(handler)
    os.replace(tmp, final)
    index = rep.write_index(reports_dir)
    return RunResult(run_id=run_id, folder=final, report=final / "report.html", processed=processed,
                     index=index, records=built.get("records", {}), seconds=seconds)


# --------------------------------------------------------------------------------------------------
# student copies
# --------------------------------------------------------------------------------------------------
def strip_solutions(nb):
    """A copy of a notebook without the cells tagged ``solution`` and without outputs."""
    import copy

    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if SOLUTION_TAG not in c.get("metadata", {}).get("tags", [])]
    for c in nb.cells:
        if c.get("cell_type") == "code":
            c["outputs"] = []
            c["execution_count"] = None
    return nb


def student_run_id(user: str | None = None) -> str:
    """The run id of a student's copies: ``student-<user name>`` (letters, digits, ``_.-`` kept), so that
    students never overwrite each other's artifacts, nor the teacher's (``nbval``)."""
    import getpass

    try:
        user = user or getpass.getuser()
    except Exception:  # no user name in this environment (some containers)
        user = "anonymous"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", user).strip("-.") or "anonymous"
    return f"student-{slug}"[:100]


#: Customers in a student's sample of the data (each student's copies draw their own, see
#: :func:`student_sample_seed`): the same planted truths, numbers of their own, a lighter run.
STUDENT_CUSTOMERS = 2000


def student_sample_seed(run_id: str) -> int:
    """The data seed of a student's copies: CRC-32 of the run id modulo 10,000 (stable across machines and
    Python runs, different for different students)."""
    import zlib

    return zlib.crc32(str(run_id).encode("utf-8")) % 10_000


def write_student_notebooks(out_dir, notebooks_dir=None, run_id: str | None = None) -> list[Path]:
    """Write copies of the five notebooks without solution cells to ``out_dir``; return their paths.

    The copies read the same default parameters, but their relative paths are rewritten for the new
    folder only when ``out_dir`` is a sub-folder of ``notebooks/`` (``make student`` writes
    ``notebooks/student/``): parameter literals starting with ``"../`` get one more ``../``. Their
    ``run_id`` parameter becomes ``run_id`` (default :func:`student_run_id`: ``student-<user name>``), and
    each student analyses their own sample of the data: ``n_customers = None`` becomes
    :data:`STUDENT_CUSTOMERS` and ``sample_seed`` becomes :func:`student_sample_seed` of the run id.
    """
    import nbformat

    from journey_analysis import config as cfg

    run_id = run_id or student_run_id()
    if not _RUN_ID.match(run_id):
        raise JourneyError(f"Run id {run_id!r} is not usable as a folder name.",
                           expected="letters, digits, '_', '-' or '.', starting with a letter or digit")

    src_dir = Path(notebooks_dir or cfg.NOTEBOOKS_DIR).resolve()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        depth = len(out_dir.relative_to(src_dir).parts)
    except ValueError:
        depth = None
    paths = []
    for stem in NOTEBOOKS:
        nb = strip_solutions(nbformat.read(str(src_dir / f"{stem}.ipynb"), as_version=4))
        for c in nb.cells:
            tags = c.get("metadata", {}).get("tags", [])
            if "parameters" in tags:
                c["source"] = re.sub(r'^(run_id\s*=\s*)"[^"]*"', lambda m: f'{m.group(1)}"{run_id}"', c["source"],
                                     flags=re.M)
                c["source"] = re.sub(r'^(n_customers\s*=\s*)None\b', lambda m: f"{m.group(1)}{STUDENT_CUSTOMERS}",
                                     c["source"], flags=re.M)
                c["source"] = re.sub(r'^(sample_seed\s*=\s*)\d+', lambda m: f"{m.group(1)}{student_sample_seed(run_id)}",
                                     c["source"], flags=re.M)
            if "parameters" in tags and depth:
                c["source"] = re.sub(r'(["\'])\.\./', lambda m: m.group(1) + "../" * (depth + 1), c["source"])
            elif "parameters" in tags and depth is None:
                c["source"] = re.sub(r'(["\'])(\.\./[^"\']*)(["\'])',
                                     lambda m: m.group(1) + str((src_dir / m.group(2)).resolve()) + m.group(3),
                                     c["source"])
        path = out_dir / f"{stem}.ipynb"
        atomic_write_text(path, nbformat.writes(nb))
        paths.append(path)
    return paths
