"""Prototype: views (tiling.py) via the public API, evaluated with accuracy.py."""
import sys, time
sys.path.insert(0, "/work/h-tile/benchmarks"); sys.path.insert(0, "/work/h-tile")
import numpy as np
import accuracy as A
import ssdface
from ssdface import _core, tiling

images = A.load_eval_set("/work/shared/eval/faces")
arrays = [A.decode(im.path) for im in images]
det = ssdface.Detector(num_threads=2)

def view_input(arr, v):
    x0, y0, x1, y1 = v.src
    crop = arr[int(round(y0)):int(round(y1)), int(round(x0)):int(round(x1))]
    dx0, dy0, dx1, dy1 = v.dst
    inp = np.zeros((300, 300, 3), np.float32)
    inp[dy0:dy1, dx0:dx1] = _core.resize_normalize(crop, dy1 - dy0, dx1 - dx0)
    return inp

def run(planner, low=0.01, iou=0.6, flip=False):
    out = []; passes = 0
    for arr, im in zip(arrays, images):
        h, w = arr.shape[:2]
        views = planner(w, h)
        xs = np.stack([view_input(arr, v) for v in views])
        b, l = det.forward(xs)
        per = []
        for i, v in enumerate(views):
            rows = _core.postprocess(b[i], l[i], _core.anchors(), low, iou, 1917, 300.0, 300.0)
            per.append((v, rows[:, :5]))
        if flip:
            bf, lf = det.forward(xs[:, :, ::-1].copy())
            for i, v in enumerate(views):
                rows = _core.postprocess(bf[i], lf[i], _core.anchors(), low, iou, 1917, 300.0, 300.0)[:, :5].copy()
                rows[:, [0, 2]] = 300 - rows[:, [2, 0]]
                per.append((v, rows))
        passes += len(views) * (2 if flip else 1)
        merged = tiling.merge(per, iou, 1917)
        out.append(merged)
    return out, passes / len(images)

def report(name, res, passes, thresholds=(0.27, 0.3, 0.35, 0.4, 0.5)):
    for vname, mls in (("all", 0.0), ("ge32", 32.0)):
        allscores, alloutc, nsc = [], [], 0
        matches = []
        for im, m in zip(images, res):
            ign = A.view_ignore(im.boxes, im.ignore, mls)
            mt = A.match_image(m[:, :4], m[:, 4], im.boxes, ign)
            matches.append((mt, ign, im))
            allscores.append(mt.scores); alloutc.append(mt.outcome); nsc += int((~ign).sum())
        s = np.concatenate(allscores); o = np.concatenate(alloutc)
        ap = A.average_precision(s, o, nsc)
        line = f"{name:28s} {vname:4s} passes {passes:5.1f} AP {ap:.3f} "
        for t in thresholds:
            c = A.counts(o[s >= t], nsc)
            line += f"| t{t}: R {c['recall']:.3f} P {c['precision']:.3f} "
        print(line, flush=True)
    # bucket recall at 0.27 (all view)
    buckets = np.zeros(5); tot = np.zeros(5)
    for (mt, ign, im) in [(A.match_image(m[:, :4][m[:, 4] >= 0.3], m[:, 4][m[:, 4] >= 0.3], im.boxes, im.ignore), None, im) for im, m in zip(images, res)]:
        sc = ~im.ignore; bk = A.size_buckets(im.boxes)
        for b in range(5):
            sel = sc & (bk == b); tot[b] += sel.sum(); buckets[b] += np.sum(~np.isnan(mt.face_score[sel]))
    print("   bucket recall@0.3:", " ".join(f"{a/max(t,1):.2f}" for a, t in zip(buckets, tot)), flush=True)

if __name__ == "__main__":
    import itertools
    cfg = sys.argv[1]
    if cfg == "whole":
        r, p = run(lambda w, h: [tiling.whole(w, h)]); report("whole", r, p)
    elif cfg == "pad":
        r, p = run(lambda w, h: [tiling.whole(w, h), tiling.padded(w, h)]); report("whole+pad", r, p)
    elif cfg == "flip":
        r, p = run(lambda w, h: [tiling.whole(w, h)], flip=True); report("whole+flip", r, p)
    elif cfg.startswith("mfs"):
        m = float(cfg[3:])
        for tn in [float(x) for x in sys.argv[2].split(",")]:
            tiling.TARGET_NET = tn
            r, p = run(lambda w, h: tiling.plan(w, h, m, True)); report(f"mfs{m} T{tn}", r, p)
