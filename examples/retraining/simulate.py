"""Simulate the world around a served model: labelled data arriving, and drifting requests.

    python simulate.py labelled labelled/batch-1.csv --shift 3 --seed 1
    python simulate.py requests http://127.0.0.1:8000 --shift 3 --rows 200

Rows are drawn (with replacement, seeded) from scikit-learn's breast-cancer data, with
`FEATURE` moved by `shift` standard deviations (a recalibrated sensor) and 2% noise on
every feature. `--shift 0` gives unshifted data from the same distribution.
"""

from __future__ import annotations

import argparse
import json
import urllib.request

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

FEATURE = "worst texture"


def sample(rows: int, shift: float, seed: int) -> pd.DataFrame:
    """`rows` labelled rows (features plus `target`), `FEATURE` shifted by `shift` stds."""
    frame = load_breast_cancer(as_frame=True).frame
    rng = np.random.default_rng(seed)
    out = frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)
    features = [c for c in out.columns if c != "target"]
    noise = rng.normal(1.0, 0.02, size=(rows, len(features)))
    out[features] = out[features].to_numpy() * noise
    out[FEATURE] += shift * frame[FEATURE].std()
    return out


def post_requests(url: str, frame: pd.DataFrame, batch: int = 25) -> list[int]:
    """POST the rows (without the target) to `url`/predict/batch; the versions that answered."""
    rows = frame.drop(columns=["target"]).to_dict(orient="records")
    versions = []
    for i in range(0, len(rows), batch):
        body = json.dumps({"rows": rows[i : i + batch]}).encode()
        req = urllib.request.Request(
            url.rstrip("/") + "/predict/batch",
            data=body,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            versions.append(json.load(resp)["version"])
    return versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    lab = sub.add_parser("labelled", help="write a labelled CSV batch")
    lab.add_argument("out")
    req = sub.add_parser("requests", help="post prediction requests to a server")
    req.add_argument("url")
    for p in (lab, req):
        p.add_argument("--shift", type=float, default=0.0)
        p.add_argument("--rows", type=int, default=300)
        p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frame = sample(args.rows, args.shift, args.seed)
    if args.what == "labelled":
        frame.to_csv(args.out, index=False)
        print(f"wrote {len(frame)} labelled rows to {args.out}")
    else:
        versions = post_requests(args.url, frame)
        print(f"posted {len(frame)} rows; answered by versions {sorted(set(versions))}")


if __name__ == "__main__":
    main()
