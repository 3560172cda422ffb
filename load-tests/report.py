"""Summaries of a load run: totals, per stage, per second; as a dict, text and HTML with SVG charts."""

import html
import math
from collections import Counter, defaultdict


def quantiles(values, qs=(0.5, 0.9, 0.99)):
    if not values:
        return {f"p{int(q * 100)}": None for q in qs}
    s = sorted(values)
    return {f"p{int(q * 100)}": round(s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)] * 1000, 1) for q in qs}


def summarize(results, seconds):
    ok = [r for r in results if r.error is None]
    tokens = sum(r.output_tokens for r in ok)
    return {
        "requests": len(results),
        "ok": len(ok),
        "errors": len(results) - len(ok),
        "error_ratio": round((len(results) - len(ok)) / len(results), 4) if results else 0.0,
        "rps": round(len(results) / seconds, 2) if seconds else 0.0,
        "ok_rps": round(len(ok) / seconds, 2) if seconds else 0.0,
        "latency_ms": quantiles([r.latency for r in ok]),
        "ttft_ms": quantiles([r.ttft for r in ok if r.stream and r.ttft is not None]),
        "output_tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1) if seconds else 0.0,
        "errors_by_kind": dict(Counter(r.error for r in results if r.error)),
    }


def build_report(profile, results, dropped, elapsed):
    stages = []
    start = 0.0
    for i, st in enumerate(profile["stages"]):
        mine = [r for r in results if r.stage == i]
        span = max((r.intended for r in mine), default=0.0) - min((r.intended for r in mine), default=0.0)
        entry = {"stage": i, **{k: v for k, v in st.items()}, **summarize(mine, max(span, 1e-9) if mine else 0)}
        stages.append(entry)
        start += float(st["duration_s"])
    buckets = defaultdict(list)
    for r in results:
        buckets[int(r.intended)].append(r)
    timeline = []
    for sec in range(0, int(math.ceil(elapsed)) + 1):
        rs = buckets.get(sec, [])
        ok = [r for r in rs if r.error is None]
        lat = quantiles([r.latency for r in ok])
        ttft = quantiles([r.ttft for r in ok if r.stream and r.ttft is not None])
        timeline.append({
            "t": sec,
            "ok": len(ok),
            "errors": len(rs) - len(ok),
            "p50_ms": lat["p50"],
            "p99_ms": lat["p99"],
            "ttft_p50_ms": ttft["p50"],
            "tokens": sum(r.output_tokens for r in ok),
        })
    totals = summarize(results, elapsed)
    totals["dropped_client_side"] = dropped
    return {
        "profile": profile.get("name", "unnamed"),
        "description": profile.get("description", ""),
        "mode": profile.get("mode", "rate"),
        "elapsed_s": round(elapsed, 2),
        "totals": totals,
        "stages": stages,
        "timeline": timeline,
    }


def render_text(rep):
    t = rep["totals"]
    lines = [
        f"profile {rep['profile']} ({rep['mode']}): {rep['description']}",
        f"elapsed {rep['elapsed_s']} s, {t['requests']} requests, {t['ok']} ok, {t['errors']} errors "
        f"({t['error_ratio'] * 100:.2f}%), {t['dropped_client_side']} dropped by the client",
        "",
        f"{'':10} {'req/s':>8} {'ok/s':>8} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} "
        f"{'ttft p50':>9} {'ttft p99':>9} {'tok/s':>9} {'errors':>7}",
    ]

    def row(name, s):
        f = lambda v: "-" if v is None else f"{v:.1f}"
        return (
            f"{name:10} {s['rps']:>8.1f} {s['ok_rps']:>8.1f} {f(s['latency_ms']['p50']):>9} "
            f"{f(s['latency_ms']['p90']):>9} {f(s['latency_ms']['p99']):>9} {f(s['ttft_ms']['p50']):>9} "
            f"{f(s['ttft_ms']['p99']):>9} {s['tokens_per_s']:>9.1f} {s['errors']:>7}"
        )

    for s in rep["stages"]:
        lines.append(row(f"stage {s['stage']}", s))
    lines.append(row("total", t))
    if t["errors_by_kind"]:
        lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in sorted(t["errors_by_kind"].items())))
    return "\n".join(lines)


def svg_chart(title, timeline, series, unit):
    """A small line chart: one polyline per (key, colour) over the per-second timeline."""
    w, h, pad = 640, 200, 40
    xs = [p["t"] for p in timeline] or [0]
    ys = [p[k] for p in timeline for k, _ in series if p[k] is not None] or [0]
    xmax, ymax = max(max(xs), 1), max(max(ys), 1e-9) * 1.1
    sx = lambda x: pad + (w - 2 * pad) * x / xmax
    sy = lambda y: h - pad + (2 * pad - h) * y / ymax
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
        f'<text x="{pad}" y="16" font-size="13">{html.escape(title)}</text>',
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#888"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#888"/>',
        f'<text x="{pad - 4}" y="{pad}" text-anchor="end">{ymax:.0f}</text>',
        f'<text x="{pad - 4}" y="{h - pad}" text-anchor="end">0</text>',
        f'<text x="{w - pad}" y="{h - pad + 14}" text-anchor="end">{xmax} s</text>',
        f'<text x="{pad}" y="{h - 8}">{html.escape(unit)}</text>',
    ]
    for i, (key, colour) in enumerate(series):
        pts = " ".join(f"{sx(p['t']):.1f},{sy(p[key]):.1f}" for p in timeline if p[key] is not None)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
        parts.append(f'<text x="{w - pad - 120 + i * 60}" y="16" fill="{colour}">{key}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(rep):
    tl = rep["timeline"]
    charts = [
        svg_chart("Throughput per second", tl, [("ok", "#2a7"), ("errors", "#d33")], "requests by intended send second"),
        svg_chart("Latency (from intended send)", tl, [("p50_ms", "#36c"), ("p99_ms", "#c63")], "ms"),
        svg_chart("Time to first token (streams)", tl, [("ttft_p50_ms", "#93c")], "ms"),
        svg_chart("Output tokens per second", tl, [("tokens", "#777")], "tokens"),
    ]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Tollgate load report</title></head>"
        "<body style='font-family:sans-serif;max-width:720px;margin:auto'>"
        f"<h1>Load report: {html.escape(rep['profile'])}</h1><p>{html.escape(rep['description'])}</p>"
        f"<pre>{html.escape(render_text(rep))}</pre>" + "".join(f"<div>{c}</div>" for c in charts) + "</body></html>"
    )
