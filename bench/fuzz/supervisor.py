"""The fuzz campaigns' shared part: run each case in a forked child of this warm process (greenrt, torch and onnx
already imported, so a case costs a fork plus its own work), under limits, and classify what it did.

    sup = Supervisor()
    outcome = sup.run(target, case_folder)          # target(case_folder) calls greenrt's public API
    outcome.kind                                    # "ok", "clean-error" or a finding (FINDINGS)

Outcomes (issue 13): ``ok`` (a result) and ``clean-error`` (a GreenrtError with a message: the CLI's exit 2) are
allowed; everything else is a finding: ``crash`` (the child died of a signal), ``hang`` (past the wall limit, killed),
``memory`` (past the memory limit: MemoryError, torch's allocator failing, or the child's resident memory growing
past the limit, killed), ``traceback`` (any other exception escaping the API), ``unclear-error`` (a GreenrtError
with an empty message, or one calling itself an internal error), ``outside-read`` (the child opened a file outside the case's folder and the installed
packages: an audit hook on "open"), ``code-exec`` (pickle, exec/compile of code from a string, a shell or a new
process in the child: audit hooks).

A campaign (bench/fuzz/fuzz_*.py) gives each case a *recipe*: a list of operations, each a JSON-able list, that
turns a base (a tiny model, an engine, a feed) into the case's files. ``minimize`` drops operations while the same
finding (kind, error type, place) still happens, so a finding is saved as the smallest recipe that shows it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import resource
import select
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import greenrt  # noqa: E402
from greenrt.errors import GreenrtError  # noqa: E402

ALLOWED = ("ok", "clean-error")
FINDINGS = ("crash", "hang", "memory", "traceback", "unclear-error", "outside-read", "code-exec")
UNBUILDABLE = "unbuildable"  # a recipe the case's own format cannot hold (protobuf refuses it): never reaches greenrt
OUTCOMES = ALLOWED + FINDINGS + (UNBUILDABLE,)
WALL_S = 10.0
MEMORY_BYTES = 2 << 30  # on top of the warm process: what a case may add, address space and resident memory alike

# audit events that mean code from the case ran, or could have: loading must never unpickle, spawn or shell out
_CODE_EVENTS = ("pickle.find_class", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen")
_ALLOC_FAILURES = ("can't allocate memory", "DefaultCPUAllocator", "not enough memory", "std::bad_alloc",
                   "Cannot allocate memory")


@dataclasses.dataclass
class Outcome:
    kind: str
    error_type: str | None = None
    message: str | None = None
    where: str | None = None  # the innermost greenrt (else any) frame the exception came from: "file.py:func"
    events: list[str] = dataclasses.field(default_factory=list)  # the audit events behind outside-read / code-exec
    seconds: float = 0.0
    trace: list[str] = dataclasses.field(default_factory=list)  # the innermost frames, "file.py:line func"

    @property
    def finding(self) -> bool:
        return self.kind in FINDINGS

    @property
    def signature(self) -> tuple:
        """What makes two findings the same bug: the kind, the exception type and where it was raised."""
        return (self.kind, self.error_type, self.where)

    def to_json(self) -> dict:
        return {"kind": self.kind, "error_type": self.error_type, "message": _clip(self.message),
                "where": self.where, "events": self.events[:5], "seconds": round(self.seconds, 4)}


def _clip(text: str | None, n: int = 400) -> str | None:
    return text if text is None or len(text) <= n else text[:n] + "..."


def _where(exc: BaseException) -> str | None:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/greenrt/" in f.filename] or frames
    if not ours:
        return None
    f = ours[-1]
    return f"{Path(f.filename).name}:{f.name}"


def _allowed_roots(folder: Path) -> tuple[str, ...]:
    roots = {os.path.realpath(folder), os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix),
             "/proc", "/sys", "/dev", str(ROOT / "src")}
    roots |= {os.path.realpath(p) for p in sys.path if p and os.path.isdir(p) and p not in ("/", "/tmp")}
    roots.discard(os.path.realpath(os.path.expanduser("~")))  # a sys.path entry of "." run from home
    return tuple(sorted(r.rstrip("/") + "/" for r in roots))


def _called_from_greenrt() -> bool:
    frame = sys._getframe(2)  # 0: this function, 1: the hook, 2: the caller of exec / compile
    return frame is not None and "/greenrt/" in frame.f_code.co_filename


def _install_audit(folder: Path, seen: list[str]) -> None:
    roots = _allowed_roots(folder)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path = args[0]
            if isinstance(path, int) or path is None:
                return
            try:
                real = os.path.realpath(os.fsdecode(path))
            except (TypeError, ValueError):
                seen.append(f"open {path!r}")
                return
            if not (real + "/").startswith(roots) and not any(real.startswith(r) for r in roots):
                seen.append(f"open {real} ({args[1] or 'r'})")
        elif event.startswith(_CODE_EVENTS):
            seen.append(f"{event} {str(args)[:120]}")
        elif event in ("exec", "compile") and _called_from_greenrt():
            # libraries compile strings all the time (dataclasses, typing, torch.fx); greenrt itself never should
            seen.append(f"{event} {str(args[0])[:120]}")

    sys.addaudithook(hook)


def _classify(exc: BaseException) -> Outcome:
    outcome = _kind(exc)
    outcome.trace = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__)[-6:]]
    return outcome


def _kind(exc: BaseException) -> Outcome:
    message = str(exc)
    where = _where(exc)
    if isinstance(exc, GreenrtError):
        # greenrt caught it and said so: an allocation refused under the case's limit and reported as an
        # ExecutionError naming the node is a clear error (past the limit in resident memory, the watchdog kills)
        # a message that blames greenrt ("internal error ... please report it") does not name the user's problem
        clear = message.strip() and "internal error" not in message
        kind = "clean-error" if clear else "unclear-error"
        return Outcome(kind, type(exc).__name__, message, where)
    if isinstance(exc, MemoryError) or any(s in message for s in _ALLOC_FAILURES):
        return Outcome("memory", type(exc).__name__, message, where)
    return Outcome("traceback", type(exc).__name__, message, where)


def _child(fn: Callable, args: tuple, folder: Path, write_fd: int, memory: int) -> None:
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        vsize = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (vsize + memory, vsize + memory))
        seen: list[str] = []
        _install_audit(folder, seen)
        t = time.perf_counter()
        try:
            fn(*args)
            outcome = Outcome("ok")
        except BaseException as exc:  # noqa: BLE001  (classifying every escape is the point)
            outcome = _classify(exc)
        outcome.seconds = time.perf_counter() - t
        opened = [e for e in seen if e.startswith("open ")]
        code = [e for e in seen if not e.startswith("open ")]
        if code:
            outcome = dataclasses.replace(outcome, kind="code-exec", events=code)
        elif opened:
            outcome = dataclasses.replace(outcome, kind="outside-read", events=opened)
        data = json.dumps(dataclasses.asdict(outcome), default=str).encode()
        os.write(write_fd, data)
    finally:
        os._exit(0)


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * resource.getpagesize()
    except (OSError, IndexError, ValueError):
        return 0


class Supervisor:
    """Runs cases in forked children of this process, ``wall_s`` and ``memory`` bytes each."""

    def __init__(self, wall_s: float = WALL_S, memory: int = MEMORY_BYTES):
        self.wall_s, self.memory = wall_s, memory
        # one torch thread: no OpenMP pool to break across fork, and one core each on a 2-core machine
        self.previous_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        self.base_rss = _rss(os.getpid())

    def rebase(self) -> None:
        """Measure the warm process again (after a campaign's warm-up): the memory limit is on top of it."""
        self.base_rss = _rss(os.getpid())

    def close(self) -> None:
        """This process's torch threads as they were (a campaign run inside a test session)."""
        torch.set_num_threads(self.previous_threads)

    def run(self, fn: Callable, *args: Any, folder: Path) -> Outcome:
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            _child(fn, args, folder, write_fd, self.memory)
        os.close(write_fd)
        t0 = time.perf_counter()
        chunks, killed = [], None
        rss_limit = self.base_rss + self.memory
        try:
            while True:
                left = self.wall_s - (time.perf_counter() - t0)
                if left <= 0:
                    killed = "hang"
                    break
                ready, _, _ = select.select([read_fd], [], [], min(left, 0.05))
                if ready:
                    chunk = os.read(read_fd, 1 << 16)
                    if not chunk:
                        break
                    chunks.append(chunk)
                elif _rss(pid) > rss_limit:
                    killed = "memory"
                    break
        finally:
            os.close(read_fd)
        if killed:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        seconds = time.perf_counter() - t0
        if killed:
            return Outcome(killed, None, f"killed after {seconds:.1f} s", None, [], seconds)
        if os.WIFSIGNALED(status):
            sig = signal.Signals(os.WTERMSIG(status)).name
            return Outcome("crash", sig, f"child died of {sig}", None, [], seconds)
        if not chunks:
            return Outcome("crash", "no-report", f"child exited ({status}) without a report", None, [], seconds)
        return Outcome(**json.loads(b"".join(chunks)))


def minimize(recipe: list, replay: Callable[[list], Outcome], target: Outcome, budget: int = 40) -> list:
    """The shortest sub-list of ``recipe`` whose replay gives ``target``'s finding again (greedy one-at-a-time
    removal, at most ``budget`` replays)."""
    ops = list(recipe)
    tries = 0
    changed = True
    while changed and len(ops) > 1 and tries < budget:
        changed = False
        for i in range(len(ops)):
            if tries >= budget:
                break
            candidate = ops[:i] + ops[i + 1:]
            tries += 1
            if replay(candidate).signature == target.signature:
                ops = candidate
                changed = True
                break
    return ops


def jsonable(value):
    """``value`` with non-finite floats as strings and bytes as hex: a recipe as a results file can hold it."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.generic,)):
        return jsonable(value.item())
    return value


# -- the campaign loop: progress, counts, findings, the results file --------------------------------------------
@dataclasses.dataclass
class Case:
    family: str  # which generator made it: "bytes", "structure", ...
    recipe: list
    base: str  # which base it mutates


class Campaign:
    """Counts outcomes per family, keeps the first case of each finding (minimized), writes the results file."""

    def __init__(self, name: str, seed: int, supervisor: Supervisor, replay: Callable[[Case], Outcome]):
        self.name, self.seed, self.sup, self.replay = name, seed, supervisor, replay
        self.counts: dict[str, dict[str, int]] = {}
        self.findings: dict[tuple, dict] = {}
        self.cases = 0
        self.t0 = time.perf_counter()

    def record(self, case: Case, outcome: Outcome) -> None:
        self.cases += 1
        family = self.counts.setdefault(case.family, {k: 0 for k in OUTCOMES})
        family[outcome.kind] += 1
        if not outcome.finding:
            return
        known = self.findings.get(outcome.signature)
        if known is not None:
            known["count"] += 1
            return
        small = minimize(case.recipe, lambda ops: self.replay(dataclasses.replace(case, recipe=ops)), outcome)
        again = self.replay(dataclasses.replace(case, recipe=small))
        self.findings[outcome.signature] = {
            "kind": outcome.kind, "family": case.family, "base": case.base, "count": 1,
            "error_type": outcome.error_type, "where": outcome.where, "message": _clip(outcome.message),
            "events": outcome.events[:5], "trace": outcome.trace, "recipe": jsonable(small), "recipe_ops_before_minimizing": len(case.recipe),
            "reproduces": again.signature == outcome.signature}

    def summary(self) -> str:
        totals = {k: sum(f[k] for f in self.counts.values()) for k in OUTCOMES}
        parts = [f"{k} {v}" for k, v in totals.items() if v]
        return f"{self.name}: {self.cases} cases, " + ", ".join(parts) + f"; {len(self.findings)} distinct findings"

    def write(self, out: str | os.PathLike, command: str, notes: str) -> Path:
        from greenrt.tools.results import collect_metadata, make_record, write_results

        seconds = time.perf_counter() - self.t0
        meta = collect_metadata(command, device="cpu", notes=notes, fuzz={
            "campaign": self.name, "seed": self.seed, "wall_limit_s": self.sup.wall_s,
            "memory_limit_bytes": self.sup.memory, "outcomes": list(OUTCOMES), "findings_kinds": list(FINDINGS)})
        records = []
        findings = jsonable(list(self.findings.values()))
        totals = {k: sum(f[k] for f in self.counts.values()) for k in OUTCOMES}
        records.append(make_record(self.name, f"fuzz {self.name}", None, None, "cpu", timed=False,
                                   cases=self.cases, seconds=round(seconds, 1),
                                   cases_per_s=round(self.cases / seconds, 2) if seconds else None,
                                   outcomes=totals, findings=len(findings),
                                   finding_cases=sum(f["count"] for f in findings)))
        for family, counts in sorted(self.counts.items()):
            records.append(make_record(self.name, f"fuzz {self.name}: {family}", None, None, "cpu", timed=False,
                                       cases=sum(counts.values()), outcomes=counts,
                                       findings=[f for f in findings if f["family"] == family]))
        return write_results(out, meta, records)


def progress_bar(total: int, description: str):
    """A rich progress bar (to stderr) for ``total`` cases."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[status]}"), transient=False)


def draw_recipes(strategy, n: int, seed: int) -> list:
    """``n`` recipes drawn by hypothesis from ``strategy`` (structure-aware: it favours edge values, empty and
    boundary sizes), the same ones for the same seed. Drawn up front, run afterwards: each case then runs in a
    child with no thread of hypothesis's around. Fewer than ``n`` where hypothesis finds the space exhausted."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    drawn: list = []

    @hseed(seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(recipe):
        drawn.append(recipe)

    collect()
    return drawn[:n]


def listify(value):
    """Tuples (as hypothesis draws them) to lists, all the way down: a recipe as JSON holds it."""
    if isinstance(value, (list, tuple)):
        return [listify(v) for v in value]
    return value


def limit_warm_process(headroom: int = 8 << 30) -> None:
    """Cap this (the warm) process's address space at its size now plus ``headroom``: a bug in a campaign's own
    case building then raises MemoryError here instead of waking the machine's OOM killer."""
    vsize = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (vsize + headroom, resource.RLIM_INFINITY))


def campaign_args(description: str, default_out: str):
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--seed", type=int, default=0, help="the campaign's seed: the same seed runs the same cases")
    ap.add_argument("--cases", type=int, default=200, help="how many cases to run")
    ap.add_argument("--out", default=default_out, help="results file (greenrt-results/1)")
    ap.add_argument("--wall", type=float, default=WALL_S, help="seconds a case may take before it counts as a hang")
    ap.add_argument("--minutes", type=float, default=None,
                    help="stop after this many minutes even if cases are left (the results say how many ran)")
    return ap


def campaign_main(name: str, doc: str, make_fuzz: Callable[[float], Any], notes: str, argv=None,
                  campaign_class: type | None = None) -> int:
    """A campaign script's main: its arguments, the warm process capped, the cases drawn (the campaign's clock
    starts there: drawing the cases counts in its rate) and run, the summary printed and the results written to
    bench/results/fuzz_NAME.json (or --out), its scratch folder removed."""
    import shutil

    args = campaign_args(doc.splitlines()[0], str(ROOT / f"bench/results/fuzz_{name}.json")).parse_args(argv)
    fuzz = make_fuzz(args.wall)
    limit_warm_process()
    campaign = (campaign_class or Campaign)(name, args.seed, fuzz.sup, fuzz.run)
    run_cases(campaign, fuzz.cases(args.seed, args.cases), fuzz.run, minutes=args.minutes)
    print(campaign.summary())
    command = f"nice -n 19 python bench/fuzz/fuzz_{name}.py " + " ".join(argv if argv is not None else sys.argv[1:])
    campaign.write(args.out, command, notes=notes)
    shutil.rmtree(fuzz.work, ignore_errors=True)
    return 0


def run_cases(campaign: "Campaign", cases: list[Case], run: Callable[[Case], Outcome], quiet: bool = False,
              minutes: float | None = None) -> None:
    """Each case through ``run`` (which forks it), counted, until the cases or ``minutes`` run out; a rich progress
    bar unless ``quiet``."""
    deadline = None if minutes is None else time.perf_counter() + 60 * minutes
    if quiet:
        for case in cases:
            if deadline is not None and time.perf_counter() > deadline:
                break
            campaign.record(case, run(case))
        return
    with progress_bar(len(cases), f"fuzz {campaign.name}") as bar:
        task = bar.add_task(campaign.name, total=len(cases), status="")
        for case in cases:
            if deadline is not None and time.perf_counter() > deadline:
                break
            campaign.record(case, run(case))
            if campaign.cases % 1000 == 0 and not sys.stderr.isatty():  # a log line where the bar is not drawn
                print(f"{campaign.summary()} (warm process {_rss(os.getpid()) / 2**30:.2f} GiB)", file=sys.stderr,
                      flush=True)
            findings = len(campaign.findings)
            bar.update(task, advance=1, status=f"{findings} finding{'s' * (findings != 1)}")
