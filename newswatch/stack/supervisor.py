"""Keep the stack's child processes running: when one dies, report it and restart it with backoff.

The decision (restart when, and why) is a pure function of the child's history and `now`;
`Supervisor` is the thin asyncio part that starts processes, waits on them and stops them.
Each child runs in its own process group, so stopping it also stops any workers it spawned.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path


# Longer than the stages' own clean-shutdown deadline (the processor's stop_timeout is 20 s),
# so SIGKILL only ever ends a stage that is truly stuck.
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential backoff: `initial` s after the first crash, doubling up to `maximum`.

    A child that stayed up for `stable_after` seconds is considered healthy again, so its
    next crash starts the backoff from `initial`.
    """

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0
    stable_after: float = 60.0


@dataclass(frozen=True)
class ChildHistory:
    """What the supervisor remembers about one child between restarts."""

    started_at: float | None = None
    log_offset: int = 0  # where this run's output starts in the log file
    restarts: int = 0
    consecutive_failures: int = 0


@dataclass(frozen=True)
class RestartDecision:
    restart: bool
    delay: float
    reason: str  # "stopping", "crashed", "exited" (a stage must not exit on its own)
    history: ChildHistory


def decide_restart(policy: RestartPolicy, history: ChildHistory, exit_code: int, now: float,
                   stopping: bool) -> RestartDecision:
    """Whether and when to restart a child that just exited with `exit_code` at `now`."""
    if stopping:
        return RestartDecision(False, 0.0, "stopping", history)
    ran_for = now - history.started_at if history.started_at is not None else 0.0
    failures = 1 if ran_for >= policy.stable_after else history.consecutive_failures + 1
    delay = min(policy.maximum, policy.initial * policy.factor ** (failures - 1))
    reason = "exited" if exit_code == 0 else "crashed"
    return RestartDecision(True, delay, reason,
                           replace(history, restarts=history.restarts + 1, consecutive_failures=failures))


def describe_exit(returncode: int) -> str:
    """`exit code 3` or `killed by SIGKILL` (asyncio reports a signal as a negative code)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


@dataclass(frozen=True)
class ChildSpec:
    """One supervised process: a name for people, its argv, extra environment and a log file."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    cwd: Path | None = None


@dataclass(frozen=True)
class ChildEvent:
    """Something that happened to a child, for the status view: started, exited, restarting, stopped."""

    name: str
    kind: str
    pid: int | None = None
    detail: str = ""
    log_tail: str = ""


def guarded(argv: tuple[str, ...]) -> tuple[str, ...]:
    """`argv` wrapped so the child gets SIGTERM when this process dies (see orphan_guard)."""
    return (sys.executable, "-m", "newswatch.stack.orphan_guard", str(os.getpid()), *argv)


def tail_lines(path: Path | None, count: int = 8, since: int = 0) -> str:
    """The last `count` lines of a log file written after byte `since` ('' when there are none)."""
    if path is None or not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(since, size - 16384))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-count:])


class Supervisor:
    """Runs children until `stop()`; restarts the ones that die, as `decide_restart` says."""

    def __init__(self, specs: Sequence[ChildSpec], *, on_event: Callable[[ChildEvent], None],
                 policy: RestartPolicy = RestartPolicy(), base_env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] | None = None, stop_timeout: float = STOP_TIMEOUT):
        self.specs = list(specs)
        self.on_event = on_event
        self.policy = policy
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self.stop_timeout = stop_timeout
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """Start every child (in order) and the tasks that watch them."""
        for spec in self.specs:
            history = await self._spawn(spec, ChildHistory())
            self._tasks.append(asyncio.create_task(self._watch(spec, history), name=f"watch-{spec.name}"))

    async def _spawn(self, spec: ChildSpec, history: ChildHistory) -> ChildHistory:
        log = None
        offset = 0
        if spec.log_path is not None:
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = spec.log_path.open("ab")
            offset = log.tell()
        try:
            process = await asyncio.create_subprocess_exec(
                *guarded(spec.argv), env={**self.base_env, **spec.env}, stdin=asyncio.subprocess.DEVNULL,
                stdout=log or asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.STDOUT,
                cwd=spec.cwd, start_new_session=True)
        finally:
            if log is not None:
                log.close()
        self.processes[spec.name] = process
        self.on_event(ChildEvent(spec.name, "started", process.pid))
        return replace(history, started_at=self.clock(), log_offset=offset)

    async def _watch(self, spec: ChildSpec, history: ChildHistory) -> None:
        while True:
            process = self.processes[spec.name]
            returncode = await process.wait()
            decision = decide_restart(self.policy, history, returncode, self.clock(), self._stopping.is_set())
            if not decision.restart:
                self.on_event(ChildEvent(spec.name, "stopped", process.pid, describe_exit(returncode)))
                return
            self.on_event(ChildEvent(spec.name, decision.reason, process.pid,
                                     f"{describe_exit(returncode)}; restarting in {decision.delay:.0f} s "
                                     f"(restart {decision.history.restarts})",
                                     tail_lines(spec.log_path, since=history.log_offset)))
            # A child may have left workers behind in its process group.
            _signal_group(process.pid, signal.SIGKILL)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=decision.delay)
                self.on_event(ChildEvent(spec.name, "stopped", process.pid, "not restarted: stopping"))
                return
            except asyncio.TimeoutError:
                pass
            history = await self._spawn(spec, decision.history)

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes.items()}

    async def stop(self) -> None:
        """SIGTERM every child's process group, wait up to `stop_timeout`, then SIGKILL what is left."""
        self._stopping.set()
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            _signal_group(process.pid, signal.SIGTERM)
        if running:
            done, pending = await asyncio.wait([asyncio.create_task(p.wait()) for p in running],
                                               timeout=self.stop_timeout)
            for process in running:
                if process.returncode is None:
                    self.on_event(ChildEvent(self._name_of(process), "killed", process.pid,
                                             f"did not stop within {self.stop_timeout:.0f} s of SIGTERM"))
            if pending:
                for process in running:
                    if process.returncode is None:
                        _signal_group(process.pid, signal.SIGKILL)
                await asyncio.wait(pending, timeout=10)
        # Workers a child spawned into its group die with it.
        for process in self.processes.values():
            _signal_group(process.pid, signal.SIGKILL)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def kill_now(self) -> None:
        """SIGKILL every child's process group at once (a second Ctrl-C: do not wait any longer)."""
        self._stopping.set()
        for process in self.processes.values():
            if process.returncode is None:
                _signal_group(process.pid, signal.SIGKILL)

    def _name_of(self, process: asyncio.subprocess.Process) -> str:
        return next(name for name, p in self.processes.items() if p is process)


def _signal_group(pgid: int, signum: int) -> None:
    """Signal a child's whole process group; a group that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
