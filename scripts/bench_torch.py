#!/usr/bin/env python3
"""The PyTorch side of scripts/bench.lua: the same networks (CIFAR ResNets
with zero-padding shortcuts, Wide ResNets, DenseNet-BC, ResNet-18 and -50 as
torchvision builds them, and crlab's default 'cnn'), the same batch, the same
number of threads, NCHW or channels_last (argument 6); prints one JSON line
with images/s for training (forward + backward + SGD step) and inference.
Needs only torch.

  bench_torch.py NAME BATCH THREADS TRAIN_ITERS INFER_ITERS [LAYOUT] [--device cuda] [--compile] [--bf16]

With --device cuda (the GPU benchmark) it measures training only, with
cudnn.benchmark on and TF32 allowed, synchronising around the timed steps;
LAYOUT 'both' measures NCHW and channels_last in one process; --compile
times torch.compile(model) (its compilation is in the warm-up, not in the
figure; the caller limits the time); --bf16 trains under bf16 autocast."""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.c1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(o)
        self.c2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(o)
        self.pad = (o - i) // 2
        self.stride = stride

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        s = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.pad:
            s = F.pad(s, (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(y + s)


def resnet_cifar(channels, classes, depth=20):
    n = (depth - 2) // 6
    layers = [nn.Conv2d(channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    i = 16
    for stage, w in enumerate((16, 32, 64)):
        for b in range(n):
            layers.append(Block(i, w, 2 if stage > 0 and b == 0 else 1))
            i = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes)]
    return nn.Sequential(*layers)


class PreAct(nn.Module):
    """Wide ResNet block: BN-ReLU-conv twice, 1x1 projection where the shape changes."""
    def __init__(self, i, o, stride):
        super().__init__()
        self.b1, self.c1 = nn.BatchNorm2d(i), nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.b2, self.c2 = nn.BatchNorm2d(o), nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.sc = nn.Conv2d(i, o, 1, stride, bias=False) if stride != 1 or i != o else None

    def forward(self, x):
        y = self.c2(F.relu(self.b2(self.c1(F.relu(self.b1(x))))))
        return y + (self.sc(x) if self.sc is not None else x)


def wrn(channels, classes, depth, k):
    n = (depth - 4) // 6
    layers, i = [nn.Conv2d(channels, 16, 3, 1, 1, bias=False)], 16
    for stage, w in enumerate((16 * k, 32 * k, 64 * k)):
        for b in range(n):
            layers.append(PreAct(i, w, 2 if stage > 0 and b == 0 else 1))
            i = w
    layers += [nn.BatchNorm2d(i), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(i, classes)]
    return nn.Sequential(*layers)


class Basic(nn.Module):
    """ImageNet basic block with a 1x1 conv + BN projection where the shape changes (torchvision's)."""
    def __init__(self, i, o, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o)
        self.c2, self.b2 = nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o)
        self.sc = (nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))
                   if stride != 1 or i != o else None)

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (self.sc(x) if self.sc is not None else x))


class Bottleneck(nn.Module):
    """ImageNet bottleneck (torchvision's v1.5: the stride on the 3x3), 1x1 conv + BN projection."""
    def __init__(self, i, w, stride):
        super().__init__()
        o = 4 * w
        self.f = nn.Sequential(nn.Conv2d(i, w, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                               nn.Conv2d(w, w, 3, stride, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                               nn.Conv2d(w, o, 1, bias=False), nn.BatchNorm2d(o))
        self.sc = (nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))
                   if stride != 1 or i != o else None)

    def forward(self, x):
        return F.relu(self.f(x) + (self.sc(x) if self.sc is not None else x))


def resnet50(channels, classes):
    layers = [nn.Conv2d(channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    i = 64
    for stage, (w, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
        for b in range(n):
            layers.append(Bottleneck(i, w, 2 if stage > 0 and b == 0 else 1))
            i = 4 * w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(i, classes)]
    return nn.Sequential(*layers)


def resnet18(channels, classes):
    layers = [nn.Conv2d(channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    i = 64
    for stage, w in enumerate((64, 128, 256, 512)):
        for b in range(2):
            layers.append(Basic(i, w, 2 if stage > 0 and b == 0 else 1))
            i = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(i, classes)]
    return nn.Sequential(*layers)


class DenseLayer(nn.Module):
    """DenseNet-BC bottleneck: BN-ReLU-1x1 conv to 4k, BN-ReLU-3x3 conv to k, concatenated to the input."""
    def __init__(self, c, k):
        super().__init__()
        self.f = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 4 * k, 1, bias=False),
                               nn.BatchNorm2d(4 * k), nn.ReLU(), nn.Conv2d(4 * k, k, 3, 1, 1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.f(x)], 1)


def densenet_bc(channels, classes, depth, k):
    n = (depth - 4) // 6
    c = 2 * k
    layers = [nn.Conv2d(channels, c, 3, 1, 1, bias=False)]
    for block in range(3):
        for _ in range(n):
            layers.append(DenseLayer(c, k))
            c += k
        if block < 2:
            layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
            c //= 2
    layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*layers)


def cnn(channels, classes, size):
    s = size // 4
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * s * s, 128), nn.ReLU(), nn.Linear(128, classes))


def build(model_name, batch):
    if model_name.startswith("resnet") and model_name[6:] not in ("18", "34", "50"):
        return resnet_cifar(3, 10, int(model_name[6:])), (batch, 3, 32, 32)
    if model_name.startswith("wrn-"):
        _, d, k = model_name.split("-")
        return wrn(3, 10, int(d), int(k)), (batch, 3, 32, 32)
    if model_name.startswith("densenet-bc-"):
        _, _, d, k = model_name.split("-")
        return densenet_bc(3, 10, int(d), int(k)), (batch, 3, 32, 32)
    if model_name == "resnet18":
        return resnet18(3, 10), (batch, 3, 224, 224)
    if model_name == "resnet50":
        return resnet50(3, 10), (batch, 3, 224, 224)
    if model_name == "cnn":
        return cnn(1, 10, 28), (batch, 1, 28, 28)
    raise SystemExit("bench_torch.py: no PyTorch definition of " + model_name)


def measure(model_name, batch, threads, train_iters, infer_iters, channels_last=False):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, shape = build(model_name, batch)
    x = torch.randn(*shape)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(train_iters):
        step()
    train_ips = batch * train_iters / (time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        for _ in range(2):
            model(x)
        t0 = time.perf_counter()
        for _ in range(infer_iters):
            model(x)
        infer_ips = batch * infer_iters / (time.perf_counter() - t0)
    return {"torch": torch.__version__, "train_ips": train_ips, "infer_ips": infer_ips}


def measure_cuda(model_name, batch, train_iters, channels_last, compile_=False, bf16=False):
    """Training images/s on the GPU; the timed steps are bracketed by synchronize."""
    torch.manual_seed(0)
    model, shape = build(model_name, batch)
    model = model.cuda()
    x = torch.randn(*shape, device="cuda")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device="cuda")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    fwd = torch.compile(model) if compile_ else model

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(fwd(x), y)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(train_iters):
        step()
    torch.cuda.synchronize()
    return batch * train_iters / (time.perf_counter() - t0), warm


def main_cuda(name, batch, ti, layout, compile_, bf16):
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    layouts = ["nchw", "channels_last"] if layout == "both" else [layout]
    r = {"torch": torch.__version__, "device_name": torch.cuda.get_device_name(0)}
    for lay in layouts:
        ips, warm = measure_cuda(name, batch, ti, lay == "channels_last", compile_, bf16)
        r["train_ips_" + lay] = ips
        r["warmup_s_" + lay] = warm
    return r


if __name__ == "__main__":
    pos, flags, device = [], set(), "cpu"
    args = iter(sys.argv[1:])
    for a in args:
        if a == "--device":
            device = next(args, "cpu")
        elif a.startswith("--"):
            flags.add(a)
        else:
            pos.append(a)
    name, batch, threads, ti, ii = pos[0], int(pos[1]), int(pos[2]), int(pos[3]), int(pos[4])
    layout = pos[5] if len(pos) > 5 else "nchw"
    if device == "cuda":
        torch.set_num_threads(threads)
        print(json.dumps(main_cuda(name, batch, ti, layout, "--compile" in flags, "--bf16" in flags)))
    else:
        print(json.dumps(measure(name, batch, threads, ti, ii, layout == "channels_last")))
