"""Two versions of the platform side by side: `python -m bench.compare BASE [OTHER]`.

BASE and OTHER are git revisions (OTHER defaults to the working tree), or `floor`: the platform's shape
with none of its rules (bench/floor.py), to see what the rules cost. Each is checked out in its own
worktree under build/compare and started as `make bench` starts the platform (bench/harness.py), both at
once. The load then alternates between them in short slices, round after round, so a machine whose speed
drifts (a shared VM's does, by a third within minutes) slows both sides alike; figures from two separate
runs do not compare. Prints, per concurrency, each side's requests/s, p50/p99 and CPU milliseconds per
generation by process, and OTHER's CPU and requests/s as a ratio of BASE's: the geometric mean of the
rounds' ratios, with a 95% interval from their spread. A difference whose interval holds 1 is not one.

The load is a procedural 64x64 sync create through REST (`make bench`'s); with `--relay`, the OpenAI
Images request `make bench-peer` sends, relayed by each side to one stand-in upstream.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from .fake_openai import BODY as RELAY_BODY
from .fake_openai import register_relay_model, running_upstream
from .load import Measured, load_generator, measured_load, percentile
from .rest_sync import BODY as REST_BODY

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKTREES = ROOT / "build" / "compare"
# Runs in the side's own checkout, so each side starts its own code the way its own benchmarks do.
_SERVE = """
import json, os, sys
from bench.harness import benched_platform
with benched_platform(**json.loads(os.environ["BENCH_PLATFORM_ENV"])) as benched:
    print(json.dumps({"url": benched.platform.gateway_url, "key": benched.key, "pids": benched.pids()}))
    sys.stdout.flush()
    sys.stdin.read()
"""
FLOOR = "floor"
_SERVE_FLOOR = """
import json, sys
from bench.floor import bare_platform
with bare_platform() as (url, pids):
    print(json.dumps({"url": url, "key": "floor", "pids": pids}))
    sys.stdout.flush()
    sys.stdin.read()
"""


@dataclass
class Side:
    name: str
    tree: pathlib.Path
    serve: str = _SERVE
    gateway: str = ""
    key: str = ""
    pids: dict[str, int] = field(default_factory=dict)


@dataclass
class Tally:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    # Each round's CPU milliseconds per generation and requests/s, for the ratios' spread.
    by_round: list[tuple[float, float]] = field(default_factory=list)


def _ratio_spread(base: Tally, other: Tally, index: int) -> str:
    """The ratio of every round's figures (other / base), as its geometric mean and a 95% interval from
    the rounds' spread: two runs of one revision against itself have differed by up to 14% in 8 rounds,
    so a ratio whose interval holds 1 is not a measured difference."""
    logs = [math.log(o[index] / b[index]) for b, o in zip(base.by_round, other.by_round, strict=True)]
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return f"x{math.exp(mean):.2f}"
    half = _T95.get(len(logs) - 1, 2.0) * statistics.stdev(logs) / math.sqrt(len(logs))
    return f"x{math.exp(mean):.2f} (95%: {math.exp(mean - half):.2f}-{math.exp(mean + half):.2f})"


# Student's t at 97.5% by degrees of freedom, for the small numbers of rounds this runs.
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23,
        11: 2.20, 12: 2.18, 13: 2.16, 14: 2.14, 15: 2.13}  # fmt: skip


def _worktree(revision: str) -> pathlib.Path:
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    tree = WORKTREES / commit[:12]
    if not tree.exists():
        WORKTREES.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True)
    return tree


def _side(revision: str) -> Side:
    if revision == FLOOR:
        return Side(FLOOR, ROOT, serve=_SERVE_FLOOR)
    return Side(revision, _worktree(revision))


@contextlib.contextmanager
def _started(side: Side, platform_env: dict[str, str]) -> Iterator[Side]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(["gen/python", "."]),
        "BENCH_PLATFORM_ENV": json.dumps(platform_env),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", side.serve],
        cwd=side.tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{side.name}: the platform did not start (its output is above)")
        started = json.loads(line)
        side.gateway, side.key, side.pids = started["url"], started["key"], started["pids"]
        yield side
    finally:
        process.stdin.close()
        process.wait(timeout=60)


@dataclass(frozen=True)
class Load:
    path: str
    body: dict


REST = Load("/api/images/generations", REST_BODY)
RELAY = Load("/v1/images/generations", RELAY_BODY)


def _run(side: Side, load: Load, concurrency: int, seconds: float) -> Measured:
    measured = measured_load(side.pids, side.gateway + load.path, side.key, concurrency, seconds, load.body)
    if measured.load.errors:
        raise RuntimeError(f"{side.name}: {measured.load.errors} requests were not answered 200")
    if not measured.load.latencies:
        raise RuntimeError(f"{side.name}: no request was answered in {seconds:.0f}s at c={concurrency}")
    return measured


def _slice(side: Side, load: Load, concurrency: int, seconds: float, tally: Tally) -> None:
    measured = _run(side, load, concurrency, seconds)
    result = measured.load
    tally.seconds += result.seconds
    tally.latencies += result.latencies
    for name, used in measured.cpu_seconds.items():
        tally.cpu[name] = tally.cpu.get(name, 0.0) + used
    count = max(len(result.latencies), 1)
    tally.by_round.append((sum(measured.cpu_seconds.values()) * 1000 / count, count / result.seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("base", help="a git revision")
    parser.add_argument("other", nargs="?", help="a git revision; the working tree if left out")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one slice")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--relay", action="store_true", help="the OpenAI relay's load instead of REST's")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for both sides' platforms (IMAGEGEN_KEY_RATE_PER_SECOND=100: key rates on)",
    )
    args = parser.parse_args()
    platform_env = dict(setting.split("=", 1) for setting in args.env)
    load = RELAY if args.relay else REST
    if args.relay and FLOOR in (args.base, args.other):
        parser.error("the floor's bare generator takes the REST create only")
    sides = [_side(args.base), _side(args.other) if args.other else Side("working tree", ROOT)]
    tallies = {(id(side), c): Tally() for side in sides for c in args.concurrency}
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(running_upstream()) if args.relay else ""
        for side in sides:
            stack.enter_context(_started(side, platform_env))
            if upstream:
                register_relay_model(side.gateway, side.key, upstream)
            _run(side, load, 4, 2.0)  # warm-up
        for round_ in range(args.rounds):
            for concurrency in args.concurrency:
                for side in sides if round_ % 2 == 0 else sides[::-1]:
                    _slice(side, load, concurrency, args.seconds, tallies[(id(side), concurrency)])
    what = "OpenAI relay (b64_json)" if args.relay else "procedural 64x64 via REST"
    slices = f"{args.rounds} rounds of {args.seconds:.0f}s slices per side and concurrency, alternating"
    print(f"{what}: {slices}, load from {load_generator()}")
    for concurrency in args.concurrency:
        rows = []
        for side in sides:
            tally = tallies[(id(side), concurrency)]
            count = max(len(tally.latencies), 1)
            by_process = {name: seconds * 1000 / count for name, seconds in tally.cpu.items()}
            rows.append((side, tally, len(tally.latencies) / tally.seconds, sum(by_process.values())))
            print(
                f"c={concurrency:<3} {side.name[:24]:24} {rows[-1][2]:7.1f} req/s"
                f"  p50 {percentile(tally.latencies, 0.5) * 1000:6.1f} ms"
                f"  p99 {percentile(tally.latencies, 0.99) * 1000:6.1f} ms"
                f"  {rows[-1][3]:6.2f} CPU ms/gen  "
                + " ".join(f"{name} {ms:.2f}" for name, ms in by_process.items())
            )
        (_, base, _, _), (_, other, _, _) = rows
        ratios = f"CPU {_ratio_spread(base, other, 0)}, req/s {_ratio_spread(base, other, 1)}"
        print(f"      {sides[1].name} / {sides[0].name}, by round: {ratios}")


if __name__ == "__main__":
    main()
