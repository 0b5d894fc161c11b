"""The experiment's figures, drawn so that what they show can be read off them.

Rules every figure follows: values are labelled where a reader compares them (dot plots); an axis starts
near its data or is logarithmic where the data span decades; a series that would flatten the others
gets its own panel (the dense stage, one-shot perplexities); zero is never drawn on a log axis (it is
marked and counted instead); overlapping series differ in marker and line style; intervals are drawn
whenever there are seeds. Every function returns False without matplotlib (``pip install 'nmref[plot]'``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_write_figure

__all__ = ["write_plots", "plot_seeds", "plot_teal"]

_STYLES = [("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("P", "--"), ("X", "-."), ("*", ":"),
           ("<", "-"), (">", "--"), ("h", "-.")]


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _smooth(v, k):
    return np.convolve(v, np.ones(k) / k, mode="valid")


def _zoom(values, pad=0.15):
    """Limit the value axis to the data (with a margin), never to zero."""
    lo, hi = float(np.min(values)), float(np.max(values))
    span = hi - lo if hi > lo else max(abs(hi), 1e-3) * 0.02
    return lo - pad * span, hi + pad * span


def _loss_figure(plt, metrics, results):
    recipes = list(results["recipes"])
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    floor = results["data"].get("floor_nats_per_token")
    retrain = []
    for i, r in enumerate(recipes):
        tr = [(m["step"], m["train_loss"]) for m in metrics if m.get("recipe") == r and "train_loss" in m]
        va = [(m["step"], m["val_loss"]) for m in metrics if m.get("recipe") == r and "val_loss" in m]
        mk, ls = _STYLES[i % len(_STYLES)]
        target = ax[0] if r == "dense" else ax[1]
        if tr:
            s, v = zip(*tr)
            k = max(1, len(v) // 50)
            target.plot(s[k - 1:], _smooth(v, k), ls, label=r, lw=1.2)
        if va:
            s, v = zip(*va)
            if r != "dense":
                retrain.extend(v)
            ax[2].plot(s, v, ls, marker=mk, ms=3, label=r, lw=1)
    ax[0].set(title="dense stage: training loss", xlabel="step", ylabel="nats/token")
    ax[1].set(title="retraining: training loss (KD recipes: α·KL + (1−α)·CE)", xlabel="step in stage",
              ylabel="nats/token")
    ax[2].set(title="validation loss of the exported model", xlabel="step in stage", ylabel="nats/token")
    if retrain:  # the retraining recipes set the scale; the dense curve's early values would flatten them
        ax[2].set_ylim(*_zoom(retrain + ([floor] if floor is not None else [])))
    if floor is not None:
        for a in ax:
            a.axhline(floor, color="k", ls="--", lw=0.8, label="entropy floor")
    for a in ax:
        if a.get_lines():
            a.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def _flip_figure(plt, metrics, results):
    fig, ax = plt.subplots(figsize=(7, 4.2))
    notes = []
    for i, r in enumerate(results["recipes"]):
        fl = [(m["step"], m["flip_rate"]) for m in metrics if m.get("recipe") == r and "flip_rate" in m]
        if not fl:
            continue
        s, v = (np.array(a) for a in zip(*fl))
        mk, ls = _STYLES[i % len(_STYLES)]
        pos = v > 0
        ax.plot(s[pos], v[pos], ls, marker=mk, ms=3, lw=1, alpha=0.85, label=r)
        if (~pos).any():  # zero on a log axis: counted, not drawn as a drop to the floor
            notes.append(f"{r}: 0 flips at {int((~pos).sum())} of {v.size} refreshes")
    ax.set(title="mask flip rate per refresh (log scale)", xlabel="step in stage", ylabel="fraction of weights flipped")
    if ax.get_lines():
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    if notes:
        ax.text(0.01, 0.01, "\n".join(notes), transform=ax.transAxes, fontsize=6, va="bottom")
    fig.tight_layout()
    return fig


def _dots(ax, names, values, title, floor=None, errors=None):
    """A dot plot (values labelled) whose axis starts at the data, not at zero: bars from zero would make
    values 3% apart look equal. The entropy floor is drawn when it lies near the data, named otherwise."""
    y = np.arange(len(names))
    colors = ["#555" if n == "dense" else "#2a7" for n in names]
    ax.errorbar(values, y, xerr=errors, fmt="none", ecolor="#888", capsize=3, lw=1)
    ax.scatter(values, y, c=colors, zorder=3, s=28)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)
    spread = list(values) + ([v + e for v, e in zip(values, errors)] + [v - e for v, e in zip(values, errors)]
                             if errors is not None else [])
    lo, hi = _zoom(spread, pad=0.3)
    if floor is not None and floor >= lo - 0.5 * (hi - lo):
        lo = min(lo, floor - 0.05 * (hi - lo))
        ax.axvline(floor, color="k", ls="--", lw=0.8, label=f"entropy floor {floor:.3f}")
        ax.legend(fontsize=7, loc="lower right")
    elif floor is not None:
        title += f" (entropy floor {floor:.3f}, off the axis)"
    ax.set_xlim(lo, hi + 0.12 * (hi - lo))  # room for the labels
    for yi, v in zip(y, values):
        ax.annotate(f"{v:.3f}", (v, yi), xytext=(6, 4), textcoords="offset points", fontsize=7)
    ax.set_title(title, fontsize=9)


def _ppl_figure(plt, results):
    from .recipes import ONE_SHOT
    rs = results["recipes"]
    floor = results["data"].get("floor_ppl")
    by_ppl = sorted((n for n in rs if n != "dense"), key=lambda n: rs[n]["val_ppl"])  # dense first, then ranked
    one_shot = [n for n in by_ppl if n in ONE_SHOT]
    trained = ["dense"] * ("dense" in rs) + [n for n in by_ppl if n not in ONE_SHOT]
    panels = [(trained, "dense and retrained")] + \
        ([(["dense"] + one_shot, "dense and one-shot")] if one_shot else [])
    fig, ax = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 0.45 * max(len(trained), 4) + 1.5),
                           squeeze=False)
    for a, (names, title) in zip(ax[0], panels):
        _dots(a, names, [rs[n]["val_ppl"] for n in names], f"validation perplexity: {title}", floor=floor)
        a.set_xlabel("perplexity per token")
    fig.tight_layout()
    return fig


def write_plots(run: Path, metrics: list, results: dict) -> bool:
    """``loss.png``, ``flip_rate.png``, ``perplexity.png`` of one run. False without matplotlib."""
    plt = _plt()
    if plt is None:
        return False
    for name, fig in (("loss.png", _loss_figure(plt, metrics, results)), ("flip_rate.png", _flip_figure(plt, metrics, results)),
                      ("perplexity.png", _ppl_figure(plt, results))):
        atomic_write_figure(fig, Path(run) / name)
    plt.close("all")
    return True


def plot_seeds(path: Path, agg: dict) -> bool:
    """``seeds.png``: mean validation perplexity per recipe with its 95% interval, in rank order."""
    plt = _plt()
    if plt is None:
        return False
    from .recipes import ONE_SHOT
    names = [n for n in agg["ranking"] if n not in ONE_SHOT]
    extra = [n for n in agg["ranking"] if n in ONE_SHOT]
    panels = [(names, "dense and retrained")] + ([(extra, "one-shot")] if extra else [])
    fig, ax = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 0.45 * max(len(names), 4) + 1.5),
                           squeeze=False)
    k = len(agg["seeds"])
    for a, (ns, title) in zip(ax[0], panels):
        vals = [agg["recipes"][n]["val_ppl_mean"] for n in ns]
        errs = [agg["recipes"][n]["val_ppl_ci95"] or 0.0 for n in ns]
        _dots(a, ns, vals, f"{title}: mean over {k} seeds ± 95% interval", errors=errs)
        a.set_xlabel("validation perplexity per token")
    fig.tight_layout()
    atomic_write_figure(fig, path)
    plt.close(fig)
    return True


def plot_teal(path: Path, result: dict) -> bool:
    """``teal.png``: perplexity (log scale: it spans decades at high sparsity) against achieved sparsity."""
    plt = _plt()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    i = 0
    for m in dict.fromkeys(r["model"] for r in result["rows"]):
        for method, ls in (("uniform", "--"), ("greedy", "-")):
            rs = [r for r in result["rows"] if r["model"] == m and r["method"] == method]
            mk = _STYLES[i % len(_STYLES)][0]
            i += 1
            ax.plot([r["achieved"] for r in rs], [r["val_ppl"] for r in rs], ls, marker=mk, ms=4, label=f"{m}, {method}")
    ax.set_yscale("log")
    ax.set_xlabel("activation sparsity (achieved on validation)")
    ax.set_ylabel("validation perplexity (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_figure(fig, path, dpi=120)
    plt.close(fig)
    return True
