"""Scaling laws for (sparse) language models: fitting, bootstrap intervals and prediction.

Two documented functional forms, fitted to measured validation losses ``L`` (nats/token) of models
with ``N`` parameters (the dense architecture's count of the parameters a sparsity pattern applies
to), trained on ``D`` tokens, at sparsity ``s`` (0: dense; 0.5: 2:4):

* ``"chinchilla"`` (Hoffmann et al. 2022, eq. 2): ``L = E + A/N^α + B/D^β``; parameters
  ``(E, A, α, B, β)``.
* ``"sparse"``: the same law with an effective parameter count ``N_eff = N·(1−s)^γ``:
  ``L = E + A/(N·(1−s)^γ)^α + B/D^β``; parameters ``(E, A, α, B, β, γ)``. ``γ = 1``: a sparse model is
  worth exactly its nonzero parameters; ``γ < 1``: each nonzero parameter is worth more than a dense
  one. ``(1−s)^γ`` is the efficiency factor (the dense parameters a sparse model of ``N`` is worth,
  over ``N``). This multiplicative, power-law-in-density form is the simplest that is 1 at ``s = 0``;
  CAST's own form could not be checked (its text was not available), and Frantar et al.'s sparse law
  (ICLR 2024) also scales the parameter term by a function of the density.

Fitting follows Chinchilla's procedure: parameters in log space (``e = log E``, ``a = log A``,
``b = log B``), the prediction computed as ``log L̂ = LSE(e, a − α log N_eff, b − β log D)``, and the
**Huber loss** (δ = 10⁻³) of ``log L̂ − log L`` summed over the points, minimised by L-BFGS-B from every
point of a grid of initialisations (**multi-start**; the best end point wins). **Bootstrap**: the
points resampled with replacement ``n_boot`` times (``numpy.random.Generator`` given), each refitted
from the full fit and the two best other starts; 95% intervals are percentiles. **Prediction** at new
points: the median and 95% interval of ``f_b(x)·exp(r_b)`` over the bootstrap fits ``f_b``, with
``r_b`` drawn from the full fit's log residuals (parameter and point-to-point scatter together).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ._checks import NMRefValueError, check_choice, check_int

__all__ = ["FORMS", "ScalingFit", "fit_scaling_law", "predict", "law"]

FORMS = {"chinchilla": ("E", "A", "alpha", "B", "beta"), "sparse": ("E", "A", "alpha", "B", "beta", "gamma")}
HUBER_DELTA = 1e-3


@dataclass(frozen=True)
class ScalingFit:
    """A fitted law: ``params`` (natural scale), 95% ``intervals`` (lo, hi) per parameter, the bootstrap
    parameter draws ``boot`` [n_boot, k] (log scale for E, A, B), the log residuals of the full fit."""
    form: str
    params: dict
    intervals: dict
    boot: np.ndarray = field(repr=False)
    residuals: np.ndarray = field(repr=False)
    n_points: int = 0
    #: parameters whose best fit lies on a bound of the search box: the data do not determine them
    at_bounds: tuple = ()

    def efficiency(self, s: float) -> tuple[float, float, float]:
        """``(1−s)^γ`` and its 95% interval (``"sparse"`` form)."""
        if self.form != "sparse":
            raise NMRefValueError("efficiency needs the 'sparse' form")
        g = np.asarray(self.boot[:, 5])
        vals = (1 - s) ** g
        return (1 - s) ** self.params["gamma"], float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def _log_pred(theta: np.ndarray, logn: np.ndarray, logd: np.ndarray, log1ms: np.ndarray, form: str) -> np.ndarray:
    e, a, alpha, b, beta = theta[:5]
    logneff = logn + (theta[5] * log1ms if form == "sparse" else 0.0)
    return np.logaddexp(np.logaddexp(e, a - alpha * logneff), b - beta * logd)


def law(form: str, params: dict, n, d, s=0.0) -> np.ndarray:
    """``L(N, D[, s])`` of ``form`` with natural-scale ``params``."""
    check_choice("form", form, tuple(FORMS))
    n, d, s = (np.asarray(v, dtype=np.float64) for v in (n, d, s))
    neff = n * ((1 - s) ** params["gamma"] if form == "sparse" else 1.0)
    return params["E"] + params["A"] / neff ** params["alpha"] + params["B"] / d ** params["beta"]


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _objective(theta, logn, logd, log1ms, logl, form):
    """Σ Huber(log L̂ − log L) / δ and its gradient (dividing by δ rescales, not moves, the minimum)."""
    e, a, alpha, b, beta = theta[:5]
    logneff = logn + (theta[5] * log1ms if form == "sparse" else 0.0)
    terms = np.stack([np.full_like(logn, e), a - alpha * logneff, b - beta * logd])
    lp = np.logaddexp.reduce(terms, axis=0)
    w = np.exp(terms - lp)                                  # softmax weights of the three terms
    r = lp - logl
    dr = np.clip(r, -HUBER_DELTA, HUBER_DELTA) / HUBER_DELTA
    g = [np.sum(dr * w[0]), np.sum(dr * w[1]), -np.sum(dr * w[1] * logneff), np.sum(dr * w[2]),
         -np.sum(dr * w[2] * logd)]
    if form == "sparse":
        g.append(-alpha * np.sum(dr * w[1] * log1ms))
    return float(np.sum(_huber(r, HUBER_DELTA)) / HUBER_DELTA), np.array(g)


def _grid(form: str):
    base = itertools.product((-1.0, 0.5), (0.0, 5.0, 10.0), (0.2, 0.5), (0.0, 5.0, 10.0), (0.2, 0.5))
    starts = [np.array(p) for p in base]
    if form == "sparse":
        starts = [np.append(p, g) for p in starts for g in (0.5, 1.0)]
    return starts


_BOUNDS = {"chinchilla": [(-10, 5), (-10, 40), (0.0, 3.0), (-10, 40), (0.0, 3.0)]}
_BOUNDS["sparse"] = _BOUNDS["chinchilla"] + [(0.0, 3.0)]


def _minimise(starts, args, form):
    from scipy.optimize import minimize

    results = []
    for x0 in starts:
        r = minimize(_objective, x0, args=args + (form,), jac=True, method="L-BFGS-B", bounds=_BOUNDS[form],
                     options={"ftol": 1e-11, "gtol": 1e-8, "maxiter": 1000})
        results.append((r.fun, r.x))
    results.sort(key=lambda t: t[0])
    return results


def _prepare(n, d, loss, s, form):
    n, d, loss = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (n, d, loss))
    s = np.broadcast_to(np.asarray(s, dtype=np.float64), n.shape).reshape(-1)
    if not (n.shape == d.shape == loss.shape == s.shape):
        raise NMRefValueError(f"n, d, loss and s must have one value per point, got {n.shape}, {d.shape}, {loss.shape}, {s.shape}")
    if np.any(~np.isfinite(n) | (n <= 0)) or np.any(~np.isfinite(d) | (d <= 0)) or np.any(~np.isfinite(loss) | (loss <= 0)):
        raise NMRefValueError("n, d and loss must be finite and positive")
    if np.any((s < 0) | (s >= 1)):
        raise NMRefValueError("sparsity s must lie in [0, 1)")
    k = len(FORMS[form])
    if n.size < k + 1:
        raise NMRefValueError(f"form {form!r} has {k} parameters: fit it on at least {k + 1} points, got {n.size}")
    return np.log(n), np.log(d), np.log1p(-s), np.log(loss)


def _natural(theta, form) -> dict:
    names = FORMS[form]
    vals = [math.exp(theta[0]), math.exp(theta[1]), theta[2], math.exp(theta[3]), theta[4]] + list(theta[5:])
    return dict(zip(names, (float(v) for v in vals)))


def fit_scaling_law(n, d, loss, s=0.0, *, form: str = "chinchilla", n_boot: int = 200,
                    rng: np.random.Generator | None = None) -> ScalingFit:
    """Fit ``form`` to points ``(n, d, s) -> loss`` (see the module docstring); ``rng`` drives the
    bootstrap (required when ``n_boot > 0``)."""
    check_choice("form", form, tuple(FORMS))
    n_boot = check_int("n_boot", n_boot, minimum=0)
    if n_boot and not isinstance(rng, np.random.Generator):
        raise NMRefValueError("the bootstrap needs rng, a numpy.random.Generator (no global random state is used)")
    logn, logd, log1ms, logl = _prepare(n, d, loss, s, form)
    args = (logn, logd, log1ms, logl)
    grid = _grid(form)  # multi-start: the objective at every grid point, the 8 lowest optimised
    screened = sorted(grid, key=lambda x0: _objective(x0, *args, form)[0])[:8]
    ranked = _minimise(screened, args, form)
    best = ranked[0][1]
    resid = _log_pred(best, *args[:3], form) - logl
    boot = np.empty((n_boot, len(FORMS[form])))
    warm = [best]
    for i in range(n_boot):
        idx = rng.integers(0, logl.size, logl.size)
        boot[i] = _minimise(warm, tuple(a[idx] for a in args), form)[0][1]
    names = FORMS[form]
    intervals = {}
    for j, name in enumerate(names):
        col = boot[:, j] if n_boot else np.array([best[j]])
        if name in ("E", "A", "B"):
            col = np.exp(col)
        intervals[name] = (float(np.percentile(col, 2.5)), float(np.percentile(col, 97.5)))
    at_bounds = tuple(name for name, v, (lo, hi) in zip(names, best, _BOUNDS[form])
                      if min(abs(v - lo), abs(v - hi)) <= 1e-6 * max(1.0, abs(lo), abs(hi)))
    return ScalingFit(form, _natural(best, form), intervals, boot, resid, int(logl.size), at_bounds)


def predict(fit: ScalingFit, n, d, s=0.0, *, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(median, lo, hi)`` of the predicted loss at each point (95% bootstrap prediction interval)."""
    n, d, s = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (n, d, s))
    s = np.broadcast_to(s, n.shape) if s.size == 1 else s
    if fit.boot.shape[0] == 0:
        raise NMRefValueError("predict needs a fit with a bootstrap (n_boot > 0)")
    args = (np.log(n), np.log(d), np.log1p(-s))
    draws = np.stack([_log_pred(th, *args, fit.form) - rng.choice(fit.residuals) for th in fit.boot])  # obs = fit − r
    vals = np.exp(draws)
    return np.median(vals, axis=0), np.percentile(vals, 2.5, axis=0), np.percentile(vals, 97.5, axis=0)


# ------------------------------------------------------------------------------ results files
def read_points(path) -> dict:
    """A sweep's ``results.csv`` (columns ``N``, ``D``, ``sparsity``, ``loss``; others kept as labels)."""
    import csv
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise NMRefValueError(f"{str(path)!r} is not a file; expected a sweep's results.csv")
    try:
        with p.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise NMRefValueError(f"{str(path)!r} is not a readable CSV file ({e})") from None
    need = ("N", "D", "sparsity", "loss")
    if not rows or any(k not in rows[0] for k in need):
        raise NMRefValueError(f"{str(path)!r} must be a CSV with columns {need} (a sweep's results.csv)")
    try:
        out = {k: np.array([float(r[k]) for r in rows]) for k in need}
    except (TypeError, ValueError) as e:
        raise NMRefValueError(f"{str(path)!r}: a value of column N, D, sparsity or loss is not a number ({e})") from None
    out["rows"] = rows
    return out


def holdout_mask(points: dict, spec: str) -> np.ndarray:
    """Points held out of the fit: ``"largest"`` (the largest N), or ``"N>=X"`` / ``"D>=X"``."""
    if spec == "largest":
        return points["N"] == points["N"].max()
    for key in ("N", "D"):
        if spec.startswith(key + ">="):
            try:
                return points[key] >= float(spec[len(key) + 2:])
            except ValueError:
                break
    raise NMRefValueError(f"holdout must be 'largest', 'N>=X' or 'D>=X', got {spec!r}")


def fit_report(points: dict, *, form: str, holdout: str | None, n_boot: int, rng: np.random.Generator) -> dict:
    """Fit on the points not held out; predict the held-out ones with intervals (``n_boot ≥ 1``)."""
    n_boot = check_int("n_boot", n_boot, minimum=1)
    held = holdout_mask(points, holdout) if holdout else np.zeros(points["N"].size, bool)
    if held.all():
        raise NMRefValueError(f"holdout {holdout!r} leaves no point to fit on")
    fit = fit_scaling_law(points["N"][~held], points["D"][~held], points["loss"][~held], points["sparsity"][~held],
                          form=form, n_boot=n_boot, rng=rng)
    rep = {"form": form, "params": fit.params, "intervals": fit.intervals, "n_fit": int((~held).sum()),
           "holdout": holdout, "held_out": [], "at_bounds": list(fit.at_bounds)}
    if form == "sparse":
        rep["efficiency_2_4"] = fit.efficiency(0.5)
    if held.any():
        med, lo, hi = predict(fit, points["N"][held], points["D"][held], points["sparsity"][held], rng=rng)
        for i, j in enumerate(np.flatnonzero(held)):
            meas = float(points["loss"][j])
            rep["held_out"].append({"N": float(points["N"][j]), "D": float(points["D"][j]),
                                    "sparsity": float(points["sparsity"][j]), "measured": meas,
                                    "predicted": float(med[i]), "lo": float(lo[i]), "hi": float(hi[i]),
                                    "rel_error": float(med[i] / meas - 1), "inside": bool(lo[i] <= meas <= hi[i])})
    rep["_fit"] = fit
    return rep


def report_markdown(rep: dict) -> str:
    lines = [f"Form `{rep['form']}`, fitted on {rep['n_fit']} points (Huber on log loss, multi-start, "
             f"{rep['_fit'].boot.shape[0]} bootstrap refits; 95% intervals).", "",
             "| parameter | fit | 95% interval |", "|---|---|---|"]
    for k, v in rep["params"].items():
        lo, hi = rep["intervals"][k]
        lines.append(f"| {k} | {v:.4g} | [{lo:.4g}, {hi:.4g}] |")
    if rep.get("at_bounds"):
        lines += ["", f"**Warning:** {', '.join(rep['at_bounds'])} sit at a bound of the fit's search box: the "
                  "points do not determine them (more sizes or token budgets are needed), and their intervals "
                  "are not meaningful."]
    if "efficiency_2_4" in rep:
        e, lo, hi = rep["efficiency_2_4"]
        lines += ["", f"Efficiency of 2:4 (s = 0.5): a 2:4 model of N parameters is worth N·(1−s)^γ = "
                  f"**{e:.3f}·N** dense parameters [{lo:.3f}, {hi:.3f}], i.e. each nonzero parameter is worth "
                  f"**{e / 0.5:.3f}** dense ones [{lo / 0.5:.3f}, {hi / 0.5:.3f}]."]
    if rep["held_out"]:
        lines += ["", f"Held out ({rep['holdout']}):", "",
                  "| N | D | sparsity | measured loss | predicted [95% interval] | error | inside |",
                  "|---|---|---|---|---|---|---|"]
        for h in rep["held_out"]:
            lines.append(f"| {h['N']:.4g} | {h['D']:.4g} | {h['sparsity']:g} | {h['measured']:.4f} | "
                         f"{h['predicted']:.4f} [{h['lo']:.4f}, {h['hi']:.4f}] | {100 * h['rel_error']:+.2f}% | "
                         f"{'yes' if h['inside'] else 'no'} |")
    return "\n".join(lines)


def plot_report(path, points: dict, rep: dict) -> bool:
    """Fitted curves over the measured points against D, one colour per (N, sparsity); held-out
    points with their intervals; the region beyond the fitted N shaded as extrapolation."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from .io import atomic_write_figure

    fit = rep["_fit"]
    held = {(h["N"], h["D"], h["sparsity"]) for h in rep["held_out"]}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = sorted({(n, s) for n, s in zip(points["N"], points["sparsity"])})
    dmin, dmax = points["D"].min(), points["D"].max()
    grid = np.geomspace(dmin / 1.5, dmax * 1.5, 60)
    nfit = max(n for n, d, s in zip(points["N"], points["D"], points["sparsity"]) if (n, d, s) not in held)
    for i, (n, s) in enumerate(keys):
        col = plt.cm.viridis(i / max(1, len(keys) - 1))
        sel = (points["N"] == n) & (points["sparsity"] == s)
        fitted = [d for d in points["D"][sel] if (n, d, s) not in held]
        extrap = n > nfit or not fitted
        curve = law(fit.form, fit.params, n, grid, s)
        inside = np.zeros(grid.size, bool) if extrap else (grid >= min(fitted)) & (grid <= max(fitted))
        # solid where the curve interpolates this series' fitted points, dashed where it extrapolates
        ax.plot(grid, np.where(inside, curve, np.nan), "-", color=col, label=f"N={n:.3g}, s={s:g}"
                + (" (extrapolated)" if extrap else ""))
        ax.plot(grid, np.where(inside, np.nan, curve), "--", color=col, alpha=0.7)
        for d, l_ in zip(points["D"][sel], points["loss"][sel]):
            ax.plot(d, l_, "o" if (n, d, s) not in held else "s", color=col, mfc="none" if (n, d, s) in held else col)
    for h in rep["held_out"]:
        ax.errorbar(h["D"], h["predicted"], yerr=[[h["predicted"] - h["lo"]], [h["hi"] - h["predicted"]]], fmt="x",
                    color="k", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("training tokens D")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("fit on filled points; dashed: extrapolation" + ("; held out: open squares, prediction × with "
                 "95% interval" if rep["held_out"] else ""), fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    atomic_write_figure(fig, path, dpi=120)
    plt.close(fig)
    return True
