"""`invoke bench.load --scenario load|stress|spike|endurance|volume`: the spec's load tests with
pgbench, the field's tool, running the app's own queries (data/bench/app_queries.sql, the SQL
bench.queries runs through SQLAlchemy) as custom scripts, on a throwaway cluster loaded with the
production-size sample (and its PgBouncer).

Scripts: one per query, generated from app_queries.sql: numeric parameters by `\\set k random(...)`,
text parameters (usernames, emails, trainers, services, name parts) by a scalar subquery on a key
table (data/bench/pgbench_keys.sql) — one statement per transaction, so a transaction's latency is
the query's. The app's mix: every read script of bench.queries' 50 users at weight 1, the single-row
INSERT at the weight that makes it 1 in 10.

Scenarios (each prints a table and one JSON line last):
  load       50 clients, the mix, through PgBouncer's session pool (the app's string; -M prepared)
  stress     clients stepped up through PgBouncer's transaction pool (-M extended), 10 to 500: the
             knee is the first step whose p95 is at least twice the first step's, or with errors;
             the steps go on to 500 clients (the target: 0 errors there, max_connections 100)
  spike      10 clients, then 190 more at once for a while, then 10 again (transaction pool): the
             10 clients' p95 per second, and how long after the spike their p95 needs to come back
             within twice its value before the spike
  endurance  50 clients for `minutes` (default 10), session pool: transactions/s and the server's
             memory (private memory of the postmaster and its children, shared memory once) per
             minute, throughput drift (last minute against the first)
  volume     each read query alone, one client direct, at production size and at 10x (two
             throwaway clusters, one run, query by query): each query's p95 at both sizes and the ratio
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

from hrp_harness import HarnessError
from hrp_harness.migration import sample
from hrp_harness.bench.queries import MIX_READS, READS, WRITE, Target, percentiles, prepare_target, read_queries
from hrp_harness.platform.cluster import DATABASE
from hrp_harness.platform.paths import REPO, pgbin
from hrp_harness.platform.server_user import make_server_dir

KEYS_SQL = REPO / "data" / "bench" / "pgbench_keys.sql"
SCENARIOS = ("load", "stress", "spike", "endurance", "volume")
#: How each parameter of app_queries.sql is drawn in pgbench: a `\set` and the expression that
#: replaces `:param` in the query (None: the \set variable itself).
PARAMS = {
    "prediction_id": ("\\set prediction_id random(1, :max_prediction_id)", None),
    "race_id": ("\\set race_id random(1, :max_race_id)", None),
    "horse_id": ("\\set horse_id random(1, :max_horse_id)", None),
    "trainer": ("\\set k random(1, :n_trainers)", "(select trainer from bench.trainer_keys where k = :k)"),
    "from_date": ("\\set day random(0, :n_days)", "(select first_day + cast(:day as integer) from bench.ranges)"),
    "username": ("\\set k random(1, :n_users)", "(select username from bench.user_keys where k = :k)"),
    "email": ("\\set k random(1, :n_users)", "(select email from bench.user_keys where k = :k)"),
    "service_name": ("\\set k random(1, :n_services)",
                     "(select service_name from bench.service_keys where k = :k)"),
    "pattern": ("\\set k random(1, :n_patterns)", "(select pattern from bench.search_keys where k = :k)"),
    "prediction_value": ("\\set v random(0, 999999)", ":v / 1000000.0"),
    "confidence": ("\\set c random(0, 9999)", ":c / 10000.0"),
    "algorithm_version": ("\\set n random(1, 999999999)", "'pgb' || :client_id || '-' || :n"),
}
TARGET_STRESS_CLIENTS = 500
STRESS_STEPS = (10, 25, 50, 100, 200, 300, 400, 500)


def pgbench_scripts(directory: Path) -> dict[str, Path]:
    """Write one pgbench script per query of app_queries.sql into directory; name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    scripts = {}
    for name, sql in read_queries().items():
        text = sql["postgres"]
        sets = []
        for param in dict.fromkeys(re.findall(r"(?<!:):([a-z_]+)", text)):
            if param not in PARAMS:
                raise HarnessError(f"{name}: no pgbench rule for parameter :{param} (bench_load.PARAMS)")
            set_line, expression = PARAMS[param]
            sets.append(set_line)
            if expression is not None:
                text = re.sub(rf"(?<!:):{param}\b", expression.replace("\\", "\\\\"), text)
        body = " ".join(line.strip() for line in text.splitlines() if not line.strip().startswith("--"))
        path = directory / f"{name}.pgbench"
        path.write_text("".join(f"{s}\n" for s in dict.fromkeys(sets)) + body + ";\n")
        scripts[name] = path
    return scripts


@dataclass
class Bench:
    """A loaded throwaway target, its pgbench scripts and the ranges they draw from."""
    target: Target
    scripts: dict[str, Path]
    ranges: dict[str, str]
    workdir: Path

    @classmethod
    def prepare(cls, base: Path, size: str, seed: int, echo=print) -> Bench:
        source = sample.generate(base / f"sample-{size}.sqlite", size, seed)
        target = prepare_target(base, source, echo)
        with psycopg.connect(target.cluster.dsn(DATABASE), autocommit=True) as conn:
            conn.execute(KEYS_SQL.read_text())
            cur = conn.execute("select * from bench.ranges")
            row = cur.fetchone()
            ranges = {d.name: str(v) for d, v in zip(cur.description, row) if d.name != "first_day"}
            conn.execute("vacuum (analyze)")
        return cls(target, pgbench_scripts(base / "scripts"), ranges, base)

    def pgbench(self, clients: int, seconds: float, scripts: list[tuple[str, int]], via: str,
                tag: str) -> dict:
        """Run pgbench (clients, seconds, scripts with weights) via "direct" (-M prepared),
        "session" (PgBouncer's session pool, -M prepared) or "transaction" (its transaction pool,
        -M extended); per-transaction log parsed: per second and per script latencies, errors."""
        if via == "direct":
            dsn, mode = self.target.direct_dsn, "prepared"
        else:
            dsn = self.target.pooler.dsn(transaction_pooling=via == "transaction")
            mode = "prepared" if via == "session" else "extended"
        logdir = self.workdir / "logs" / tag
        logdir.mkdir(parents=True, exist_ok=True)
        argv = [pgbin("pgbench"), "--no-vacuum", "--protocol", mode, "--client", str(clients),
                "--jobs", str(min(clients, 4)), "--time", str(max(1, round(seconds))), "--log",
                "--log-prefix", str(logdir / "tx"), "--failures-detailed",
                *(f"--define={k}={v}" for k, v in self.ranges.items())]
        for name, weight in scripts:
            argv += ["--file", f"{self.scripts[name]}@{weight}"]
        argv.append(dsn)
        env = {**os.environ, "PGPASSWORD": self.target.password, "PGAPPNAME": f"bench.load {tag}"}
        started = time.time()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=logdir)
        return parse_run(done, logdir, [n for n, _ in scripts], started, clients)


def parse_run(done: subprocess.CompletedProcess, logdir: Path, names: list[str], started: float,
              clients: int) -> dict:
    """pgbench's summary and its per-transaction logs: tps, errors, latency percentiles overall,
    per script and per second."""
    out = done.stdout + done.stderr
    per_script: dict[int, list[float]] = {}
    per_second: dict[int, list[float]] = {}
    all_ms: list[float] = []
    for log in logdir.glob("tx*"):
        for line in log.read_text().splitlines():
            # client_id transaction_no time script_no time_epoch time_us (time "failed" on errors)
            fields = line.split()
            if len(fields) < 6 or not fields[2].isdigit():
                continue
            ms = int(fields[2]) / 1000
            all_ms.append(ms)
            per_script.setdefault(int(fields[3]), []).append(ms)
            per_second.setdefault(int(fields[4]) - int(started), []).append(ms)
        log.unlink()
    failed = re.search(r"number of failed transactions: (\d+)", out)
    aborted = "aborted" in out or done.returncode != 0
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    errors = (int(failed.group(1)) if failed else 0) + (clients if aborted and not tps else 0)
    errors += len(re.findall(r"client \d+ (?:script \d+ )?aborted", out))
    return {"clients": clients, "tps": float(tps.group(1)) if tps else 0.0, "errors": errors,
            "aborted": aborted, "exit": done.returncode,
            "message": "" if not aborted else out.strip().splitlines()[-1][:300],
            **{f"{k}_ms": v for k, v in percentiles(all_ms).items() if k != "n"},
            "transactions": len(all_ms),
            "scripts": {names[i]: percentiles(v) for i, v in sorted(per_script.items()) if i < len(names)},
            "per_second": {s: percentiles(v) for s, v in sorted(per_second.items())}}


def app_mix() -> list[tuple[str, int]]:
    """The 50 users' mix of bench.queries: each read once, the INSERT 1 in 10 of all."""
    return [(name, 9) for name in MIX_READS] + [(WRITE, len(MIX_READS))]


def server_memory_mb(pid: int) -> float:
    """The server's memory in MB: the private memory (USS) of the postmaster and each of its
    children, plus the shared memory (shared buffers and the rest) once."""
    total = 0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                total += proc.memory_full_info().uss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        total += root.memory_info().shared
    except psutil.NoSuchProcess:
        pass
    return round(total / 2**20, 1)


# -- scenarios -----------------------------------------------------------------------------------

def scenario_load(bench: Bench, seconds: float) -> tuple[list[list[str]], dict]:
    run = bench.pgbench(50, seconds, app_mix(), "session", "load")
    rows = [[name, f"{p['p50']}", f"{p['p95']}", f"{p['p99']}", f"{p['n']:,}"] for name, p in run["scripts"].items()]
    rows.append(["all (50 clients, PgBouncer session pool)", f"{run['p50_ms']}", f"{run['p95_ms']}",
                 f"{run['p99_ms']}", f"{run['transactions']:,}"])
    result = {"clients": 50, "tps": run["tps"], "p95_ms": run["p95_ms"], "p99_ms": run["p99_ms"],
              "errors": run["errors"], "scripts": {n: p["p95"] for n, p in run["scripts"].items()},
              "targets_met": run["errors"] == 0 and run["tps"] > 0}
    return [["query", "p50 ms", "p95 ms", "p99 ms", "transactions"], *rows], result


def scenario_stress(bench: Bench, seconds: float) -> tuple[list[list[str]], dict]:
    steps, knee, knee_reason, base_p95 = [], None, None, None
    for clients in STRESS_STEPS:
        run = bench.pgbench(clients, seconds, app_mix(), "transaction", f"stress-{clients}")
        steps.append({k: run[k] for k in ("clients", "tps", "p50_ms", "p95_ms", "p99_ms", "errors", "message")})
        base_p95 = base_p95 or run["p95_ms"]
        if knee is None and (run["errors"] or run["p95_ms"] >= 2 * base_p95):
            knee = clients  # and on to 500 clients: the pooler's target is 0 errors there
            knee_reason = "errors" if run["errors"] else f"p95 {run['p95_ms']} ms >= 2 x {base_p95} ms"
    rows = [["clients", "tps", "p50 ms", "p95 ms", "p99 ms", "errors"]]
    rows += [[str(s["clients"]), f"{s['tps']:,.0f}", f"{s['p50_ms']}", f"{s['p95_ms']}", f"{s['p99_ms']}",
              str(s["errors"])] for s in steps]
    errors = sum(s["errors"] for s in steps)
    best = max(steps, key=lambda s: s["tps"])
    result = {"knee_clients": knee, "knee_reason": knee_reason, "max_tps": best["tps"], "max_tps_clients": best["clients"], "errors": errors, "steps": steps,
        "max_clients_run": steps[-1]["clients"]}
    # the pooler's promise: 500 clients (max_connections 100) with 0 errors
    result["targets_met"] = errors == 0 and steps[-1]["clients"] >= TARGET_STRESS_CLIENTS
    return rows, result


def scenario_spike(bench: Bench, seconds: float) -> tuple[list[list[str]], dict]:
    """10 clients for 3 x seconds; 190 more during the middle third."""
    third = max(5.0, seconds)
    steady: dict = {}

    def run_steady():
        steady.update(bench.pgbench(10, 3 * third, app_mix(), "transaction", "spike-steady"))

    thread = threading.Thread(target=run_steady)
    started = time.time()
    thread.start()
    time.sleep(third)
    spike = bench.pgbench(190, third, app_mix(), "transaction", "spike-extra")
    spike_end = time.time() - started
    thread.join()
    seconds_p95 = {s: p["p95"] for s, p in steady["per_second"].items()}
    before = [v for s, v in seconds_p95.items() if 1 <= s < third - 1]
    baseline = sorted(before)[len(before) // 2] if before else float("nan")
    during = [v for s, v in seconds_p95.items() if third + 1 <= s < spike_end - 1]
    recovered_at = None
    for s in sorted(seconds_p95):
        if s < spike_end:
            continue
        if all(v <= 2 * baseline for t, v in seconds_p95.items() if t >= s and t < 3 * third - 1):
            recovered_at = s
            break
    recover_s = None if recovered_at is None else round(max(0.0, recovered_at - spike_end), 1)
    rows = [["second", "clients", "p95 ms (the 10 steady clients)", "transactions"]]
    for s, p in steady["per_second"].items():
        clients = 200 if third <= s < spike_end else 10
        rows.append([str(s), str(clients), f"{p['p95']}", str(p["n"])])
    errors = steady["errors"] + spike["errors"]
    result = {"baseline_p95_ms": baseline, "spike_p95_ms": max(during) if during else None,
              "spike_tps": spike["tps"] + steady["tps"], "recover_s": recover_s, "errors": errors,
              "spike_clients": 200, "targets_met": errors == 0 and recover_s is not None}
    return rows, result


def scenario_endurance(bench: Bench, minutes: float) -> tuple[list[list[str]], dict]:
    seconds = minutes * 60
    memory: list[tuple[int, float]] = []
    stop = threading.Event()
    pid = bench.target.cluster.pid

    def sample_memory():
        started = time.time()
        while not stop.is_set():
            memory.append((int((time.time() - started) // 60), server_memory_mb(pid)))
            stop.wait(60 if seconds >= 120 else 10)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    started = time.time()
    run = bench.pgbench(50, seconds, app_mix(), "session", "endurance")
    stop.set()
    sampler.join()
    per_minute: dict[int, int] = {}
    for s, p in run["per_second"].items():
        per_minute[s // 60] = per_minute.get(s // 60, 0) + p["n"]
    full = {m: n for m, n in per_minute.items() if (m + 1) * 60 <= seconds}
    if not full:  # shorter than a minute: the whole run as one "minute"
        full = {0: sum(per_minute.values())}
    tps_minute = {m: round(n / min(60.0, seconds), 1) for m, n in full.items()}
    first, last = tps_minute[min(tps_minute)], tps_minute[max(tps_minute)]
    drift = round(100 * (last - first) / first, 1) if first else None
    mem = {}
    for minute, mb in memory:
        mem[minute] = mb
    rows = [["minute", "transactions/s", "server memory MB at the minute's start (private + shared once)"]]
    for m in sorted(set(tps_minute) | set(mem)):
        rows.append([str(m + 1), f"{tps_minute.get(m, float('nan')):,.1f}", f"{mem.get(m, '-')}"])
    result = {"minutes": minutes, "tps": run["tps"], "errors": run["errors"], "tps_per_minute": tps_minute,
              "drift_pct": drift, "memory_mb_per_minute": mem, "p95_ms": run["p95_ms"],
              "memory_growth_mb": round(max(mem.values()) - min(mem.values()), 1) if mem else None,
              "targets_met": run["errors"] == 0}
    return rows, result


def scenario_volume(benches: dict[str, Bench], seconds: float) -> tuple[list[list[str]], dict]:
    """Each read query alone, one client (its latency without the others' queueing), at
    production size then at 10x, query by query so that both sizes share the machine's moods."""
    runs: dict[str, dict[str, dict]] = {size: {} for size in benches}
    for name in READS:
        for size, bench in benches.items():
            runs[size][name] = bench.pgbench(1, seconds, [(name, 1)], "direct", f"volume-{size}-{name}")
    rows = [["query", "p95 ms production", "p95 ms 10x", "10x / 1x", "transactions 1x / 10x"]]
    ratios = {}
    for name in READS:
        one, ten = runs["production"][name], runs["10x"][name]
        ratios[name] = round(ten["p95_ms"] / one["p95_ms"], 2)
        rows.append([name, f"{one['p95_ms']}", f"{ten['p95_ms']}", f"{ratios[name]}",
                     f"{one['transactions']:,} / {ten['transactions']:,}"])
    errors = sum(r["errors"] for size in runs.values() for r in size.values())
    result = {"p95_ms_1x": {n: r["p95_ms"] for n, r in runs["production"].items()},
              "p95_ms_10x": {n: r["p95_ms"] for n, r in runs["10x"].items()},
              "ratio_10x": ratios, "errors": errors, "max_ratio": max(ratios.values()),
              "over_2x": sorted(n for n, r in ratios.items() if r > 2.0),
              "targets_met": errors == 0 and all(r <= 2.0 for r in ratios.values())}
    return rows, result


def run(scenario: str, seconds: float | None = None, minutes: float = 10.0, seed: int = 1, echo=print) -> dict:
    from rich.console import Console
    from rich.table import Table

    if scenario not in SCENARIOS:
        raise HarnessError(f"--scenario is one of {', '.join(SCENARIOS)}")
    if shutil.which(pgbin("pgbench")) is None and not Path(pgbin("pgbench")).exists():
        raise HarnessError("pgbench not found (postgresql-15): ./hrp setup")
    console = Console(width=None if os.isatty(1) else 160)
    base = make_server_dir(Path(tempfile.mkdtemp(prefix="hrp-bench-load-")), 0o700)
    benches: dict[str, Bench] = {}
    default_seconds = {"load": 60, "stress": 15, "spike": 20, "endurance": 0, "volume": 5}
    seconds = seconds or default_seconds[scenario]
    try:
        echo(f"bench.load --scenario {scenario}: throwaway cluster(s) in {base}")
        benches["production"] = Bench.prepare(make_server_dir(base / "production"), "production", seed, echo)
        if scenario == "volume":
            benches["10x"] = Bench.prepare(make_server_dir(base / "10x"), "10x", seed, echo)
        bench = benches["production"]
        echo(f"pgbench scripts: {', '.join(p.name for p in bench.scripts.values())} (in {bench.workdir / 'scripts'})")
        runs = {  # scenario: (its run, the table's title)
            "load": (lambda: scenario_load(bench, seconds),
                     f"load: 50 clients through PgBouncer (session pool), the app's mix, {seconds:g} s"),
            "stress": (lambda: scenario_stress(bench, seconds),
                       f"stress: clients stepped up through PgBouncer (transaction pool), {seconds:g} s a step"),
            "spike": (lambda: scenario_spike(bench, seconds),
                      f"spike: 10 clients, 200 for {max(5.0, seconds):g} s, then 10 (PgBouncer transaction pool)"),
            "endurance": (lambda: scenario_endurance(bench, minutes),
                          f"endurance: 50 clients for {minutes:g} min (PgBouncer session pool)"),
            "volume": (lambda: scenario_volume(benches, seconds),
                       f"volume: each of the app's reads alone, one client direct, {seconds:g} s at production "
                       "size and at 10x"),
        }
        run_scenario, title = runs[scenario]
        rows, result = run_scenario()
        table = Table(title=title, title_justify="left")
        for i, col in enumerate(rows[0]):
            table.add_column(col, justify="left" if i == 0 else "right")
        for row in rows[1:]:
            table.add_row(*row)
        console.print(table)
        summary = {k: v for k, v in result.items() if k not in ("steps", "scripts", "p95_ms_1x", "p95_ms_10x")}
        console.print("targets " + ("met" if result["targets_met"] else "NOT met") + f": {summary}")
        result["scenario"] = scenario
        print(json.dumps(result, default=str))
        return result
    finally:
        for b in benches.values():
            b.target.pooler.stop()
            b.target.cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)
