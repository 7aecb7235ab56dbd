"""Summaries of ``compare`` results: statistics per method and budget, Markdown report, PNG plots."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

SUMMARY = "summary.json"
REPORT = "report.md"
PLOT = "learning_curves.png"
# a full disk at the end of compare: the cells are saved, only the report is missing
REPORT_FIX = "free some space there and rerun: the cells done are kept in results.jsonl, so a rerun only writes the report"


def _budget_order(label: str) -> float:
    return math.inf if label == "all" else float(label)


def _t95(k: int) -> float:
    """Two-sided 95% Student-t quantile for ``k - 1`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, k - 1))


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict[str, Any] | None:
    """Mean of ``a - b`` over the seeds both have, with a 95% t-interval (None below 2 pairs)."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    d = np.array([a[s] - b[s] for s in seeds])
    half = _t95(len(d)) * d.std(ddof=1) / math.sqrt(len(d))
    return {"mean": float(d.mean()), "low": float(d.mean() - half), "high": float(d.mean() + half), "pairs": len(d)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per test set, per budget: mean/sd accuracy of each method, the best, and best vs runner-up."""
    by_cell: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
    n_train: dict[str, int] = {}
    seconds: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        n_train[r["budget"]] = r["n_train"]
        seconds[r["method"]].append(r["fit_seconds"] + r.get("encode_seconds", 0.0))
        for test_name, m in r["metrics"].items():
            by_cell[(test_name, r["budget"], r["method"])][r["seed"]] = m["accuracy"]
    tests: dict[str, Any] = {}
    for test_name in sorted({k[0] for k in by_cell}, key=lambda n: (n != "test", n)):
        budgets = {}
        for budget in sorted({k[1] for k in by_cell if k[0] == test_name}, key=_budget_order):
            methods = {
                method: {
                    "mean": float(np.mean(list(acc.values()))),
                    "sd": float(np.std(list(acc.values()), ddof=1)) if len(acc) > 1 else 0.0,
                    "seeds": len(acc),
                }
                for (t, b, method), acc in by_cell.items()
                if t == test_name and b == budget
            }
            ranked = sorted(methods, key=lambda m: -methods[m]["mean"])
            entry: dict[str, Any] = {"n_train": n_train[budget], "methods": methods, "best": ranked[0]}
            if len(ranked) > 1:
                entry["runner_up"] = ranked[1]
                entry["best_minus_runner_up"] = paired_difference(
                    by_cell[(test_name, budget, ranked[0])], by_cell[(test_name, budget, ranked[1])]
                )
            budgets[budget] = entry
        tests[test_name] = budgets
    summary = {
        "tests": tests,
        "seconds_per_cell": {m: float(np.mean(s)) for m, s in sorted(seconds.items())},
        "cells": len(rows),
    }
    adaptation = summarise_adaptation(rows)
    if adaptation:
        summary["adaptation"] = adaptation
    active = summarise_active(by_cell)
    if active:
        summary["active_vs_random"] = active
    shift = summarise_shift(rows)
    if shift:
        summary["domain_shift"] = shift
    summary.update(summarise_majority(rows))
    return summary


def summarise_majority(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``majority_rate``: each test set's majority rate (always predicting its commoner class); and
    ``under_majority``: per test set, the cells (method, budget, seed, accuracy) that score under it."""
    rates: dict[str, float] = {}
    under: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (r["method"], _budget_order(r["budget"]), r["seed"])):
        for test_name, m in r["metrics"].items():
            if m.get("majority_rate") is None:
                continue
            rates[test_name] = m["majority_rate"]
            if m["accuracy"] < m["majority_rate"]:
                under[test_name].append({"method": r["method"], "budget": r["budget"], "seed": r["seed"],
                                         "accuracy": m["accuracy"]})
    return {"majority_rate": rates, "under_majority": dict(under)} if rates else {}


def under_majority_lines(summary: dict[str, Any]) -> list[str]:
    """One warning line per test set with cells under its majority rate (the cells grouped by method and budget)."""
    lines = []
    for test_name, cells in summary.get("under_majority", {}).items():
        groups: dict[tuple[str, str], int] = defaultdict(int)
        for c in cells:
            groups[(c["method"], c["budget"])] += 1
        listed = ", ".join(f"`{m}` at {b} labels ({k} seed{'s' if k > 1 else ''})" for (m, b), k in groups.items())
        lines.append(f"WARNING: {len(cells)} cell(s) score under `{test_name}`'s majority rate "
                     f"({100 * summary['majority_rate'][test_name]:.1f}%, always its commoner class): {listed}. "
                     "On another site, pass its positive rate (--prior) or retarget with a few of its labels.")
    return lines


def summarise_active(by_cell: dict[tuple[str, str, str], dict[int, float]]) -> dict[str, Any]:
    """Per test set and budget: each simulated strategy (``METHOD/STRATEGY``, ``compare --query``) minus
    ``METHOD/random`` on the same seeds, with a 95% t-interval."""
    out: dict[str, Any] = defaultdict(dict)
    for (test_name, budget, method), acc in sorted(by_cell.items(), key=lambda kv: (kv[0][0], _budget_order(kv[0][1]), kv[0][2])):
        base, _, query = method.rpartition("/")
        random = by_cell.get((test_name, budget, f"{base}/random"))
        if base and query != "random" and random is not None:
            out[test_name].setdefault(budget, {})[method] = paired_difference(acc, random)
    return dict(out)


ADAPTATION_KEYS = ("accuracy", "accuracy_adapted", "estimated_prior", "true_prior")


def summarise_adaptation(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per test set, budget and method: mean accuracy plain and with guarded class-prior adaptation, the
    mean estimated vs true positive rate, in how many seeds it adapted, and the first seed's reason,
    over the rows that carry adapted scores (``compare --adapt-prior``)."""
    cells: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in sorted(rows, key=lambda r: r["seed"]):
        for test_name, m in r["metrics"].items():
            if "accuracy_adapted" in m:
                cells[test_name][r["budget"]][r["method"]].append(m)
    return {
        test_name: {
            budget: {
                method: {**{k: float(np.mean([m[k] for m in ms])) for k in ADAPTATION_KEYS}, "seeds": len(ms),
                         "adapted": sum(bool(m.get("adapted", True)) for m in ms), "reason": ms[0].get("decision", "")}
                for method, ms in sorted(methods.items())
            }
            for budget, methods in sorted(budgets.items(), key=lambda kv: _budget_order(kv[0]))
        }
        for test_name, budgets in sorted(cells.items(), key=lambda kv: (kv[0] != "test", kv[0]))
    }


def _cell_code(name: str) -> str:
    """``name`` as code in a Markdown table cell: a routed spec's ``|`` escaped, or it would split the cell."""
    escaped = name.replace("|", "\\|")
    return f"`{escaped}`"


def _gap(d: dict[str, Any] | None) -> str:
    """A paired difference in accuracy points with its interval."""
    if d is None:
        return "fewer than 2 paired seeds"
    return f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] over {d['pairs']} seeds"


def summarise_shift(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per test set and encoder: the domain-shift check against the source's pool (one figure per
    encoder: it does not depend on the head, budget or seed)."""
    found: dict[str, dict[str, Any]] = defaultdict(dict)
    for r in rows:
        for test_name, m in r["metrics"].items():
            if m.get("domain_shift"):
                found[test_name][r["encoder"]] = m["domain_shift"]
    return {name: dict(sorted(by_encoder.items())) for name, by_encoder in sorted(found.items(), key=lambda kv: (kv[0] != "test", kv[0]))}


def markdown(summary: dict[str, Any], title: str = "compare") -> str:
    """The report: a mean ± sd accuracy table per test set (best in bold), paired differences, times."""
    lines = [f"# {title}", ""]
    for test_name, budgets in summary["tests"].items():
        methods = sorted({m for b in budgets.values() for m in b["methods"]})
        rate = summary.get("majority_rate", {}).get(test_name)
        majority = "" if rate is None else f"; majority rate {100 * rate:.1f}"
        lines += [f"## Accuracy on `{test_name}` (mean ± sd over seeds{majority})", ""]
        lines.append("| labels | " + " | ".join(_cell_code(m) for m in methods) + " |")
        lines.append("|---:|" + "---:|" * len(methods))
        for budget, entry in budgets.items():
            cells = []
            for m in methods:
                s = entry["methods"].get(m)
                text = "" if s is None else f"{100 * s['mean']:.1f} ± {100 * s['sd']:.1f}"
                cells.append(f"**{text}**" if m == entry["best"] and text else text)
            label = f"all ({entry['n_train']})" if budget == "all" else budget
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        gaps = [f"- {budget} labels: `{entry['best']}` vs `{entry['runner_up']}`: {_gap(entry.get('best_minus_runner_up'))}"
                for budget, entry in budgets.items() if "runner_up" in entry]
        if gaps:  # one method: nothing to pair it with
            lines += ["", "Best vs runner-up, paired over seeds (accuracy points, 95% t-interval):", "", *gaps]
        lines.append("")
    for test_name, budgets in summary.get("adaptation", {}).items():
        lines += [f"## Class-prior adaptation on `{test_name}` (means over seeds)", "",
                  "| labels | method | true positive rate | EM estimate | accuracy | with --adapt-prior | adapted in | "
                  "decision (first seed) |",
                  "|---:|---|---:|---:|---:|---:|---:|---|"]
        for budget, methods in budgets.items():
            for method, a in methods.items():
                lines.append(f"| {budget} | {_cell_code(method)} | {a['true_prior']:.3f} | {a['estimated_prior']:.3f} | "
                             f"{100 * a['accuracy']:.1f} | {100 * a['accuracy_adapted']:.1f} | "
                             f"{a['adapted']}/{a['seeds']} seeds | {a['reason']} |")
        lines.append("")
    if summary.get("domain_shift"):
        lines += ["## Domain shift (classifier two-sample AUC of each test set vs the source's pool; 0.5 = alike)", "",
                  "| test set | encoder | AUC | warning | outside the encoder's language |", "|---|---|---:|---|---:|"]
        for test_name, by_encoder in summary["domain_shift"].items():
            for encoder, d in by_encoder.items():
                auc = "-" if d["auc"] is None else f"{d['auc']:.2f}"
                warn = d.get("reason") or ("yes (above " + f"{d['threshold']:.2f})" if d["warning"] else "no")
                lang = d.get("outside_language")
                lines.append(f"| {_cell_code(test_name)} | {_cell_code(encoder)} | {auc} | {warn} | "
                             f"{'-' if not lang else format(lang['share'], '.0%')} |")
        lines.append("")
    for test_name, budgets in summary.get("active_vs_random", {}).items():
        lines += [f"## Active learning vs balanced random on `{test_name}`", "",
                  "Each strategy minus `random` (balanced budgets) on the same seeds, accuracy points, 95% t-interval:", ""]
        for budget, methods in budgets.items():
            lines += [f"- {budget} labels: `{method}`: {_gap(d)}" for method, d in methods.items()]
        lines.append("")
    warned = under_majority_lines(summary)
    if warned:
        lines += ["## Under the majority rate", "", *warned, ""]
    lines += ["## Time per cell (fit + amortised encoding, seconds)", "", "| method | seconds |", "|---|---:|"]
    lines += [f"| {_cell_code(m)} | {s:.2f} |" for m, s in summary["seconds_per_cell"].items()]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    """Accuracy vs labels (log axis), a ±sd band per method, one panel per test set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tests = summary["tests"]
    fig, axes = plt.subplots(1, len(tests), figsize=(6.5 * len(tests), 4.5), squeeze=False)
    for ax, (test_name, budgets) in zip(axes[0], tests.items()):
        methods = sorted({m for b in budgets.values() for m in b["methods"]})
        for m in methods:
            pts = [(e["n_train"], e["methods"][m]) for e in budgets.values() if m in e["methods"]]
            x = np.array([p[0] for p in pts])
            mean = np.array([p[1]["mean"] for p in pts]) * 100
            sd = np.array([p[1]["sd"] for p in pts]) * 100
            ax.plot(x, mean, marker="o", label=m)
            ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("labelled training examples")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("held-out test split" if test_name == "test" else f"test set: {test_name}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename; the temporary goes when the write fails."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_report(rows: list[dict[str, Any]], out: Path, title: str = "compare", with_plot: bool = True) -> dict[str, Any]:
    """Write ``summary.json``, ``report.md`` and (with matplotlib) ``learning_curves.png`` into ``out``; a full disk
    is one :class:`~pipeline.disk.DiskFullError` naming ``out`` (each file is whole or as it was)."""
    from pipeline.disk import explain_full_disk

    out = Path(out)
    summary = summarise(rows)
    with explain_full_disk(out, "the report", REPORT_FIX):
        _write(out / SUMMARY, json.dumps(summary, indent=2))
        text = markdown(summary, title)
        if with_plot:
            plot(summary, out / PLOT)
            text += f"\n![learning curves]({PLOT})\n"
        _write(out / REPORT, text)
    return summary

