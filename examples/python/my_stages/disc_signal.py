"""Disc signal ratio per level: a disc's mean T2 intensity over the mean of its two vertebrae's.

It falls as a disc dehydrates, one of the first signs of degeneration. Function form: spineparse
calls run(case, options) once per case. Reads the labels, the image and io.normalise's "norm"
(so the ratio is of the file's own intensities); writes metrics disc_signal_<level>.
"""
import numpy as np

# The method's labels: vertebrae 1 = S ... 10 = T9, disc 10 + k between vertebrae k and k + 1.
NAMES = ["background", "S", "L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9",
         "L5/S", "L4/L5", "L3/L4", "L2/L3", "L1/L2", "T12/L1", "T11/T12", "T10/T11", "T9/T10"]


def run(case, options):
    labels = case.fields["labels"].ravel()
    offset, scale = case.fields["norm"]           # normalised = (raw - offset) / scale
    raw = case.fields["image"].ravel() * scale + offset
    counts = np.bincount(labels, minlength=20)
    means = np.bincount(labels, weights=raw, minlength=20) / np.maximum(counts, 1)
    min_voxels = options.get("min_voxels", 20)
    metrics = {}
    for k in range(1, 10):
        disc, below, above = 10 + k, k, k + 1
        if min(counts[disc], counts[below], counts[above]) < min_voxels:
            continue                              # a level the case does not show in full
        ratio = means[disc] / ((means[below] + means[above]) / 2)
        metrics["disc_signal_" + NAMES[disc].replace("/", "_")] = float(ratio)
    return {"metrics": metrics}
