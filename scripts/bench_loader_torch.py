#!/usr/bin/env python3
"""The torchvision side of scripts/bench_loader.lua: the same two pipelines
with torch.utils.data.DataLoader on the same data and number of workers;
prints one JSON line {workers: images/s} per case. Needs torch, torchvision,
numpy and PIL."""
import json
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T


class Records(Dataset):
    def __init__(self, path, n):
        raw = np.fromfile(path, dtype=np.uint8).reshape(n, 3073)
        self.labels = raw[:, 0].astype(np.int64)
        self.images = raw[:, 1:].reshape(n, 3, 32, 32).transpose(0, 2, 3, 1).copy()
        self.t = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                            T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.t(Image.fromarray(self.images[i])), self.labels[i]


class Files(Dataset):
    def __init__(self, listing):
        self.paths = [line.strip() for line in open(listing) if line.strip()]
        self.t = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with open(self.paths[i], "rb") as f:
            img = Image.open(f).convert("RGB")
        return self.t(img), i % 10


def rate(ds, workers, batch=128):
    torch.set_num_threads(1)
    dl = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=True)
    for _ in dl:  # warm-up epoch: workers start
        pass
    t0 = time.perf_counter()
    n = 0
    for x, _ in dl:
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


if __name__ == "__main__":
    records, n, listing = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    out = {"torchvision": __import__("torchvision").__version__}
    for w in (1, 2):
        out["records_%d" % w] = rate(Records(records, n), w)
        out["jpeg_%d" % w] = rate(Files(listing), w)
    print(json.dumps(out))
