#!/usr/bin/env python3
"""Run a load profile against Tollgate and report RPS, latency, TTFT, tokens/s and errors.

    python load-tests/run.py load-tests/profiles/steady.toml --spawn          # local gateway + mock
    python load-tests/run.py PROFILE --target http://gw:8080 --key tg-...     # a running gateway

Profiles (TOML, see load-tests/README.md) give stages of arrival rate (open loop: latency is
measured from the *intended* send time, so a slow server cannot slow the load down) or of
concurrency (closed loop), the request mix, and the mock upstream's behaviour (sent as the
`x-mock` header, honoured by Tollgate's mock providers). The report is printed as text and
written as report.json and report.html (inline SVG charts) in --out.
"""

import argparse
import asyncio
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from report import build_report, render_html, render_text

WORDS = "the quick brown fox jumps over a lazy dog while gateways count tokens".split()


@dataclass
class Result:
    stage: int
    intended: float  # seconds since the run started
    latency: float = 0.0  # from the intended send time to the last byte
    ttft: float | None = None  # from the intended send time to the first content
    status: int = 0
    error: str | None = None
    output_tokens: int = 0
    stream: bool = False


@dataclass
class Run:
    profile: dict
    url: str
    keys: list
    results: list = field(default_factory=list)
    dropped: int = 0
    in_flight: int = 0


def prompt(tokens: int, rng: random.Random) -> str:
    # About one token per short English word.
    return " ".join(rng.choice(WORDS) for _ in range(max(1, tokens)))


def pick(spec, rng):
    """A number from `n` or a `[lo, hi]` range."""
    if isinstance(spec, list):
        return rng.randint(int(spec[0]), int(spec[1]))
    return int(spec)


def make_request(mix: dict, rng: random.Random):
    models = mix.get("models", [{"name": "chat", "weight": 1}])
    model = rng.choices([m["name"] for m in models], [m.get("weight", 1) for m in models])[0]
    stream = rng.random() < float(mix.get("stream_ratio", 0.5))
    body = {
        "model": model,
        "stream": stream,
        "max_tokens": pick(mix.get("max_tokens", 64), rng),
        "messages": [{"role": "user", "content": prompt(pick(mix.get("prompt_tokens", 50), rng), rng)}],
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body, stream


async def one_request(run: Run, session, t0: float, stage: int, intended: float, rng):
    mix = run.profile.get("mix", {})
    body, stream = make_request(mix, rng)
    headers = {"authorization": f"Bearer {rng.choice(run.keys)}"}
    script = run.profile.get("mock", {}).get("script")
    if script:
        headers["x-mock"] = script
    r = Result(stage=stage, intended=intended, stream=stream)
    try:
        async with session.post(run.url, json=body, headers=headers) as resp:
            r.status = resp.status
            if resp.status != 200:
                await resp.read()
                r.error = f"http_{resp.status}"
            elif stream:
                async for line in resp.content:
                    if not line.startswith(b"data: "):
                        continue
                    data = line[6:].strip()
                    if data == b"[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        r.error = "stream_error"
                        break
                    if chunk.get("choices") and r.ttft is None:
                        r.ttft = time.monotonic() - t0 - intended
                    usage = chunk.get("usage")
                    if usage:
                        r.output_tokens = usage.get("completion_tokens", 0)
            else:
                payload = await resp.json()
                r.output_tokens = (payload.get("usage") or {}).get("completion_tokens", 0)
    except asyncio.TimeoutError:
        r.error = "timeout"
    except aiohttp.ClientError as e:
        r.error = type(e).__name__
    except (ValueError, KeyError):
        r.error = "bad_body"
    r.latency = time.monotonic() - t0 - intended
    if r.ttft is None and r.error is None:
        r.ttft = r.latency
    run.results.append(r)


async def tracked(run: Run, coro):
    run.in_flight += 1
    try:
        await coro
    finally:
        run.in_flight -= 1


def arrivals(stage: dict, start: float, rng: random.Random):
    """Send times of one open-loop stage: the rate ramps linearly from `rate` to `to_rate`."""
    r0 = float(stage["rate"])
    r1 = float(stage.get("to_rate", r0))
    dur = float(stage["duration_s"])
    poisson = stage.get("arrivals", "uniform") == "poisson"
    t = 0.0
    while True:
        rate = max(r0 + (r1 - r0) * t / dur, 1e-6)
        t += rng.expovariate(rate) if poisson else 1.0 / rate
        if t >= dur:
            return
        yield start + t


async def run_profile(run: Run, scale: float):
    limits = run.profile.get("limits", {})
    max_in_flight = int(limits.get("max_in_flight", 2000))
    timeout = aiohttp.ClientTimeout(total=float(limits.get("timeout_s", 120)))
    connector = aiohttp.TCPConnector(limit=max_in_flight, force_close=False)
    rng = random.Random(run.profile.get("seed", 1))
    mode = run.profile.get("mode", "rate")
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        t0 = time.monotonic()
        tasks = []
        stage_start = 0.0
        for i, stage in enumerate(run.profile["stages"]):
            stage = dict(stage, duration_s=float(stage["duration_s"]) * scale)
            if mode == "rate":
                for at in arrivals(stage, stage_start, rng):
                    delay = t0 + at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if run.in_flight >= max_in_flight:
                        run.dropped += 1  # the client is saturated; never queue (keeps open loop honest)
                        continue
                    tasks.append(asyncio.create_task(tracked(run, one_request(run, session, t0, i, at, rng))))
            else:
                end = stage_start + stage["duration_s"]

                async def worker(i=i, end=end):
                    while time.monotonic() - t0 < end:
                        at = time.monotonic() - t0
                        await tracked(run, one_request(run, session, t0, i, at, rng))

                workers = [asyncio.create_task(worker()) for _ in range(int(stage["concurrency"]))]
                await asyncio.gather(*workers)
            stage_start += stage["duration_s"]
        await asyncio.gather(*tasks)
        return time.monotonic() - t0


def free_ports(n):
    """n distinct free ports (the sockets are held together so they cannot coincide)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def spawn_gateway(binary: str, keys: list, models: list, workdir: Path):
    """Tollgate on free ports with the built-in mock (which obeys the profile's x-mock)."""
    import hashlib

    api, admin = free_ports(2)
    lines = [
        "[server]",
        f'listen = "127.0.0.1:{api}"',
        f'admin_listen = "127.0.0.1:{admin}"',
        f'pid_file = "{workdir}/tollgate.pid"',
        f'upgrade_sock = "{workdir}/upgrade.sock"',
        "[log]",
        f'access_log = "{workdir}/access.log"',
        'level = "warn"',
        "[[providers]]",
        'name = "mock"',
        'kind = "mock"',
    ]
    for m in models:
        lines += ["[[models]]", f'name = "{m}"', 'targets = [{ provider = "mock", model = "mock-small" }]']
    digests = ", ".join(f'"sha256:{hashlib.sha256(k.encode()).hexdigest()}"' for k in keys)
    lines += ["[[consumers]]", 'name = "load"', f"keys = [{digests}]"]
    cfg = workdir / "tollgate.toml"
    cfg.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([binary, "-c", str(cfg)], stdout=subprocess.DEVNULL, stderr=open(workdir / "stderr.log", "w"))
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", api), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gateway did not start: {(workdir / 'stderr.log').read_text()}")
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{api}"


def default_binary():
    root = Path(__file__).resolve().parent.parent
    for p in (root / "target/release/tollgate", root / "target/debug/tollgate"):
        if p.exists():
            return str(p)
    return shutil.which("tollgate") or "tollgate"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", help="a profile TOML file")
    ap.add_argument("--target", help="gateway base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--key", action="append", help="client key (repeatable); default: the profile's keys")
    ap.add_argument("--spawn", action="store_true", help="start a local gateway with the built-in mock")
    ap.add_argument("--bin", default=None, help="tollgate binary for --spawn (default: target/release, then target/debug)")
    ap.add_argument("--out", default="load-report", help="directory for report.json and report.html")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every stage's duration")
    args = ap.parse_args()

    profile = tomllib.loads(Path(args.profile).read_text())
    keys = args.key or profile.get("mix", {}).get("keys") or ["tg-load-test-key"]
    models = sorted({m["name"] for m in profile.get("mix", {}).get("models", [{"name": "chat"}])})
    proc, workdir = None, None
    if args.spawn:
        workdir = Path(tempfile.mkdtemp(prefix="tollgate-load-"))
        proc, base = spawn_gateway(args.bin or default_binary(), keys, models, workdir)
    elif args.target:
        base = args.target.rstrip("/")
    else:
        ap.error("give --target URL or --spawn")
    run = Run(profile=profile, url=f"{base}/v1/chat/completions", keys=keys)
    try:
        elapsed = asyncio.run(run_profile(run, args.scale))
    finally:
        if proc:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
            shutil.rmtree(workdir, ignore_errors=True)
    report = build_report(profile, run.results, run.dropped, elapsed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.html").write_text(render_html(report))
    print(render_text(report))
    print(f"\nwritten: {out / 'report.json'}, {out / 'report.html'}")
    fail_ratio = float(profile.get("limits", {}).get("max_error_ratio", 1.0))
    return 1 if report["totals"]["error_ratio"] > fail_ratio else 0


if __name__ == "__main__":
    sys.exit(main())
