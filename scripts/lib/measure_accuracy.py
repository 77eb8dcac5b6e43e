#!/usr/bin/env python3
"""Measurement accuracy against a synthetic cohort's truth, over the values marked reliable.

usage: measure_accuracy.py COHORT:RUN_DIR ...

COHORT is a folder `spineparse synth` wrote (truth_measurements.csv, truth_alignment.csv), RUN_DIR
the output of a graph with metrics.measure (and metrics.qc) run on it. Prints, per kind of value,
the 50th and 95th percentiles of |measured - true| over structures the truth calls complete and
the run calls reliable, with the share of values marked reliable; and Genant grades >= 1 on
vertebrae the truth draws intact and, for cohorts drawn with `synth --fractures`, on those it
draws fractured.
"""
import csv
import math
import os
import sys

import numpy as np

HEIGHTS = ["anterior_height_mm", "middle_height_mm", "posterior_height_mm"]
PLATES = [("superior_endplate_deg", "superior_endplate_deg"),
          ("inferior_endplate_deg", "inferior_endplate_deg")]


def num(x):
    return float(x) if x not in ("", None) else math.nan


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def main():
    err = {}
    kept = {}
    false_grades, graded_intact = 0, 0
    found, fractured = 0, 0  # bodies synth --fractures drew wedged, and those graded >= 1
    for pair in sys.argv[1:]:
        cohort, run = pair.split(":")
        truth = {(r["case"], r["label"]): r for r in rows(os.path.join(cohort, "truth_measurements.csv"))}
        talign = {r["case"]: r for r in rows(os.path.join(cohort, "truth_alignment.csv"))}
        meas = rows(os.path.join(run, "measurements", "measurements.csv"))
        reliable = {}
        for m in meas:
            t = truth.get((m["case"], m["label"]))
            ok = m.get("reliable", "1") == "1"
            reliable[(m["case"], m["label"])] = ok and t is not None and t["complete"] == "1"
            if t is None or t["complete"] != "1" or m["complete"] != "1":
                continue
            for col in HEIGHTS + ["superior_endplate_deg", "inferior_endplate_deg"]:
                tv, mv = num(t.get(col.replace("_endplate", "_endplate"))), num(m[col])
                if col.endswith("_deg"):
                    tv = num(t[col])
                if math.isnan(tv) or math.isnan(mv):
                    continue
                kind = "height" if col in HEIGHTS else "endplate"
                kept.setdefault(kind, [0, 0])
                kept[kind][1] += 1
                if ok:
                    kept[kind][0] += 1
                    err.setdefault(kind, []).append(abs(mv - tv))
            if 2 <= int(m["label"]) <= 10 and num(t["fracture"]) == 0 and ok:
                graded_intact += 1
                if m["height_loss_grade"] not in ("", "0"):
                    false_grades += 1
            if 2 <= int(m["label"]) <= 10 and num(t["fracture"]) > 0 and ok:
                fractured += 1
                if m["height_loss_grade"] not in ("", "0"):
                    found += 1
        for a in rows(os.path.join(run, "measurements", "alignment.csv")):
            t = talign.get(a["case"])
            if not t:
                continue
            for col in t:
                if col == "case":
                    continue
                tv, mv = num(t[col]), num(a.get(col, ""))
                if math.isnan(tv) or math.isnan(mv):
                    continue
                if col.startswith("angle_"):
                    disc = col[len("angle_"):-len("_deg")].replace("_", "/")
                    labels = {"L5/S": (1, 2), "L4/L5": (2, 3), "L3/L4": (3, 4), "L2/L3": (4, 5),
                              "L1/L2": (5, 6), "T12/L1": (6, 7), "T11/T12": (7, 8),
                              "T10/T11": (8, 9), "T9/T10": (9, 10)}[disc]
                    kind = "segmental"
                elif col.startswith("lordosis"):
                    labels, kind = (1, 6), "lordosis"
                else:
                    labels, kind = (1,), "sacral slope"
                ok = all(reliable.get((a["case"], str(l)), False) for l in labels)
                kept.setdefault(kind, [0, 0])
                kept[kind][1] += 1
                if ok:
                    kept[kind][0] += 1
                    err.setdefault(kind, []).append(abs(mv - tv))
    print("| value | n reliable / all | median error | 95th percentile | max |")
    print("|---|---|---|---|---|")
    for kind in ["height", "endplate", "segmental", "lordosis", "sacral slope"]:
        e = np.array(err.get(kind, []))
        k = kept.get(kind, [0, 0])
        if len(e):
            print(f"| {kind} | {k[0]} / {k[1]} | {np.median(e):.2f} | {np.percentile(e, 95):.2f} | {e.max():.2f} |")
        else:
            print(f"| {kind} | {k[0]} / {k[1]} | - | - | - |")
    print(f"Genant grade >= 1 on reliable intact vertebrae: {false_grades} of {graded_intact}")
    if fractured:
        print(f"Genant grade >= 1 on reliable fractured vertebrae: {found} of {fractured}")


if __name__ == "__main__":
    main()
