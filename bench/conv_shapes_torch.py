"""PyTorch's side of bench/conv-shapes.ts: per pass (forward, input gradient, weight gradient) median milliseconds
of torch.nn.functional.conv2d for each shape in argv[1] (JSON [[N, C, H, O, K, stride, pad, groups], ...]), one
thread. The input and weight gradients are timed as (forward + that gradient through autograd) - forward. Prints one
JSON line per shape."""
import json
import sys
import time

import torch

torch.set_num_threads(1)


def median_ms(f, ms=500):
    for _ in range(3):
        f()
    ts = []
    t0 = time.perf_counter()
    while (time.perf_counter() - t0) * 1000 < ms or len(ts) < 5:
        a = time.perf_counter()
        f()
        ts.append((time.perf_counter() - a) * 1000)
    ts.sort()
    return ts[len(ts) // 2]


for n, c, h, o, k, s, p, g in json.loads(sys.argv[1]):
    x = torch.randn(n, c, h, h)
    w = torch.randn(o, c // g, k, k)
    conv = torch.nn.functional.conv2d
    gy = torch.randn_like(conv(x, w, None, s, p, 1, g))
    fw = median_ms(lambda: conv(x, w, None, s, p, 1, g))
    xr = x.clone().requires_grad_()
    wr = w.clone().requires_grad_()
    fx = median_ms(lambda: torch.autograd.grad(conv(xr, w, None, s, p, 1, g), (xr,), gy))
    fwt = median_ms(lambda: torch.autograd.grad(conv(x, wr, None, s, p, 1, g), (wr,), gy))
    print(json.dumps({"shape": [n, c, h, o, k, s, p, g], "ms": [fw, fx - fw, fwt - fw]}), flush=True)
