#!/usr/bin/env python3
"""Fits metrics.qc's logistic models on runs with known truth, and validates them.

usage: qc_fit.py fit OUT.json RUN_DIR...      fit on these runs' outputs, write the calibration
       qc_fit.py validate RUN_DIR...          the figures of docs/qc.md on these runs' outputs

Each RUN_DIR is the output of `spineparse run` of a graph with metrics.qc and metrics.evaluate on a
cohort with masks: qc/cases/<id>.json holds each structure's signals, metrics/cases.csv its Dice.
A structure is right when its Dice is at least 0.7 (the structure model's target); a case is good
when its mean Dice over the structures it or its truth has is at least 0.8 (the case model's).
"""
import csv
import glob
import json
import math
import os
import sys

import numpy as np

# The training-range warnings are left out of both models: the verdict demotes such a case to
# review whatever its score, and the only out-of-range cases of the calibration (thin slices,
# resampled) are good, which would teach the models to trust a warning.
STRUCTURE_FEATURES = ["probability", "low_share", "coarse_agreement", "relabelled", "fragmented",
                      "size_ratio", "spacing_misfit", "off_axis", "cut", "order_wrong",
                      "log_voxels", "case_probability", "case_structures", "case_missing"]
CASE_FEATURES = ["mean_confidence", "least_confidence", "low_share", "structures", "missing"]
NAMES = ["S", "L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9", "L5/S", "L4/L5", "L3/L4",
         "L2/L3", "L1/L2", "T12/L1", "T11/T12", "T10/T11", "T9/T10"]


def load_run(run):
    """[(run, case, {label: dice}, record)] for every case with a QC record and scores."""
    dice = {}
    with open(os.path.join(run, "metrics", "cases.csv")) as f:
        for row in csv.DictReader(f):
            d = row["dice"]
            dice.setdefault(row["case"], {})[int(row["label"])] = float(d) if d else float("nan")
    out = []
    for path in sorted(glob.glob(os.path.join(run, "qc", "cases", "*.json"))):
        case = os.path.basename(path)[:-5]
        if case in dice:
            out.append((run, case, dice[case], json.load(open(path))))
    return out


def case_mean(d):
    v = [x for x in d.values() if not math.isnan(x)]
    return float(np.mean(v)) if v else 0.0


def structure_rows(cases):
    """Feature rows, Dice, and (case index, label, cut) of every structure QC saw."""
    X, y, where = [], [], []
    for k, (_, _, d, rec) in enumerate(cases):
        for label, sig in rec["signals"].items():
            label = int(label)
            X.append([sig.get(f, float("nan")) for f in STRUCTURE_FEATURES])
            y.append(d.get(label, 0.0) if not math.isnan(d.get(label, 0.0)) else 0.0)
            where.append((k, label, sig.get("cut", 0.0) > 0))
    return np.array(X, float), np.array(y, float), where


def fit_logistic(X, t, l2=1e-2, iterations=50):
    """Newton's method for a logistic model with an L2 penalty on standardised inputs; returns
    weights and bias on the raw inputs, and the fill values (training means) for missing inputs."""
    fill = np.nanmean(X, axis=0)
    fill = np.where(np.isnan(fill), 0.0, fill)
    Xf = np.where(np.isnan(X), fill, X)
    mu, sd = Xf.mean(0), Xf.std(0)
    sd[sd < 1e-9] = 1.0
    Z = np.hstack([(Xf - mu) / sd, np.ones((len(Xf), 1))])
    w = np.zeros(Z.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-Z @ w))
        g = Z.T @ (p - t) + l2 * np.r_[w[:-1], 0]
        Hm = (Z * (p * (1 - p))[:, None]).T @ Z + l2 * np.diag(np.r_[np.ones(len(w) - 1), 0])
        step = np.linalg.solve(Hm + 1e-9 * np.eye(len(w)), g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = w[:-1] / sd
    bias = w[-1] - (w[:-1] * mu / sd).sum()
    return weights, bias, fill


def predict(weights, bias, fill, X):
    Xf = np.where(np.isnan(X), fill, X)
    return 1 / (1 + np.exp(-(Xf @ weights + bias)))


def case_rows(cases, confidence, where):
    """The case model's inputs, as metrics/qc.cpp's case_features computes them: the least
    confident and the share below 0.5 leave out structures cut by the view."""
    per_case = {}
    for (k, _, cut), c in zip(where, confidence):
        per_case.setdefault(k, []).append((c, cut))
    X = []
    for k, (_, _, _, rec) in enumerate(cases):
        conf = [c for c, _ in per_case.get(k, [])]
        inside = [c for c, cut in per_case.get(k, []) if not cut]
        cs = rec["case_signals"]
        X.append([np.mean(conf) if conf else 0.0, min(inside) if inside else 0.0,
                  np.mean([c < 0.5 for c in inside]) if inside else 1.0, len(conf),
                  cs["missing"]])
    return np.array(X, float)


def auroc(score_bad, bad):
    """Probability that a bad item scores higher than a good one (ties count half)."""
    pos, neg = score_bad[bad], score_bad[~bad]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    wins = sum(((p > neg).sum() + 0.5 * (p == neg).sum()) for p in pos)
    return wins / (len(pos) * len(neg))


def spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def fit(out, runs):
    cases = [c for r in runs for c in load_run(r)]
    X, dice, where = structure_rows(cases)
    ws, bs, fs = fit_logistic(X, (dice >= 0.7).astype(float))
    conf = predict(ws, bs, fs, X)
    C = case_rows(cases, conf, where)
    good = np.array([case_mean(d) >= 0.8 for _, _, d, _ in cases], float)
    wc, bc, fc = fit_logistic(C, good)
    model = {
        "fitted_on": f"{len(cases)} cases, {len(X)} structures: "
                     + ", ".join(os.path.basename(r.rstrip('/')) for r in runs),
        "structure": {"bias": bs, "weights": dict(zip(STRUCTURE_FEATURES, ws)),
                      "fill": dict(zip(STRUCTURE_FEATURES, fs))},
        "case": {"bias": bc, "weights": dict(zip(CASE_FEATURES, wc)),
                 "fill": dict(zip(CASE_FEATURES, fc))},
    }
    with open(out, "w") as f:
        json.dump(model, f, indent=2)
        f.write("\n")
    print(f"{out}: {len(cases)} cases, {len(X)} structures "
          f"({int((dice >= 0.7).sum())} right), {int(good.sum())} good cases")
    for t in (0.3, 0.4, 0.5, 0.6, 0.7):
        print(f"  reliable_from {t}: Dice<0.5 flagged {np.mean(conf[dice < 0.5] < t):.3f}, "
              f"Dice>=0.85 flagged {np.mean(conf[dice >= 0.85] < t):.3f}")


def validate(runs):
    """Per kind of cohort (the run folder's name after its seed) and over all: verdicts, AUROC of
    the score for a mean Dice below 0.8, and the structures' flags."""
    by_kind = {}
    for r in runs:
        kind = os.path.basename(r.rstrip("/")).split("-", 1)[-1]
        by_kind.setdefault(kind, []).extend(load_run(r))
    print("| cohort | cases | mean Dice | below 0.8 | pass | review | fail | AUROC |")
    print("|---|---|---|---|---|---|---|---|")
    all_cases = []
    for kind, cases in by_kind.items():
        all_cases += cases
        score = np.array([c[3]["score"] for c in cases])
        md = np.array([case_mean(c[2]) for c in cases])
        v = [c[3]["verdict"] for c in cases]
        a = auroc(-score, md < 0.8)
        print(f"| {kind} | {len(cases)} | {md.mean():.3f} | {(md < 0.8).sum()} | "
              f"{v.count('pass')} | {v.count('review')} | {v.count('fail')} | "
              f"{'-' if math.isnan(a) else f'{a:.3f}'} |")
    score = np.array([c[3]["score"] for c in all_cases])
    md = np.array([case_mean(c[2]) for c in all_cases])
    print(f"\nall: {len(all_cases)} cases, {(md < 0.8).sum()} with mean Dice < 0.8; "
          f"AUROC {auroc(-score, md < 0.8):.3f}")
    conf, dice = [], []
    for _, _, d, rec in all_cases:
        for name, c in rec["confidence"].items():
            x = d.get(NAMES.index(name) + 1, 0.0)
            conf.append(c)
            dice.append(0.0 if math.isnan(x) else x)
    conf, dice = np.array(conf), np.array(dice)
    print(f"structures: {len(conf)}; Spearman(confidence, Dice) {spearman(conf, dice):.3f}")
    for thr in (0.3, 0.4, 0.5, 0.6):
        print(f"  confidence < {thr}: flags {np.mean(conf[dice < 0.5] < thr):.3f} of the "
              f"{(dice < 0.5).sum()} with Dice < 0.5, {np.mean(conf[dice >= 0.85] < thr):.3f} of "
              f"the {(dice >= 0.85).sum()} with Dice >= 0.85")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("fit", "validate"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "fit":
        fit(sys.argv[2], sys.argv[3:])
    else:
        validate(sys.argv[2:])


if __name__ == "__main__":
    main()
