"""PyTorch side of chainrule's side-by-side benchmark (run by bench/run.ts, one process per thread count).

Reads the shared inputs that bench/run.ts wrote (safetensors layout: same matrices, batches, initial weights,
digits and epoch permutations as every other framework), runs the selected cases with the timing rules of
bench/harness.ts (warm-up, then samples until a time budget; median, min, max; "slow" steps get fewer
samples), and prints one JSON record per line, prefixed with "@@BENCH ", on stdout.

Usage: python3 bench/torch_bench.py --inputs FILE --threads N --fw ID --cases a,b,c [--quick] [--full]
"""

import argparse
import json
import math
import os
import struct
import sys
import time

FULL = dict(
    warmup_ms=1500, window_ms=300, budget_ms=2000, min_reps=5, max_reps=30, slow_ms=1500, slow_reps=3, very_slow_ms=10000, very_slow_reps=1
)
QUICK = dict(
    warmup_ms=50, window_ms=20, budget_ms=250, min_reps=2, max_reps=5, slow_ms=500, slow_reps=1, very_slow_ms=10000, very_slow_reps=1
)
DISPATCH_K = {"add": 1000, "grad": 200, "jvp": 200}
ATTN = {"batch": 8, "heads": 8, "len": 512, "dim": 64}  # ATTN of bench/workloads.ts
# bench/workloads.ts TRANSFORMER and LSTM_BENCH
TRANSFORMER = dict(vocab=96, width=128, layers=4, heads=4, context=128, batch=32)
LSTM_BENCH = dict(batch=64, hidden=128, steps=28, input=28, classes=10)


def emit(rec):
    print("@@BENCH " + json.dumps(rec), flush=True)


def now_ms():
    return time.perf_counter() * 1000.0


WARMUP_MAX_CALLS = 100000


def measure(step, m):
    """Time step() by the rules in bench/harness.ts; step returns a float read back from the tensors."""
    t = now_ms()
    check = step()
    first = now_ms() - t
    slow = first > m["slow_ms"]
    if not slow:
        warm_start = now_ms()
        n = 1
        while now_ms() - warm_start + first < m["warmup_ms"] and n < WARMUP_MAX_CALLS:
            step()
            n += 1
    slow_reps = m["very_slow_reps"] if first > m["very_slow_ms"] else m["slow_reps"]
    min_reps = slow_reps if slow else m["min_reps"]
    max_reps = slow_reps if slow else m["max_reps"]
    times = []
    cpu0 = time.process_time()
    start = now_ms()
    window_ms = 0 if slow else m["window_ms"]
    while True:
        elapsed = now_ms() - start
        if len(times) >= min_reps and elapsed >= window_ms and (len(times) >= max_reps or elapsed >= m["budget_ms"]):
            break
        t = now_ms()
        step()
        times.append(now_ms() - t)
    wall = now_ms() - start
    cpu = (time.process_time() - cpu0) * 1000.0 / wall
    s = sorted(times)
    mid = len(s) // 2
    med = s[mid] if len(s) % 2 == 1 else (s[mid - 1] + s[mid]) / 2
    out = {
        "medianMs": med,
        "minMs": s[0],
        "maxMs": s[-1],
        "reps": len(times),
        "cpu": cpu,
        "check": check if isinstance(check, float) and math.isfinite(check) else None,
    }
    if slow:
        out["note"] = "slow (first call %.1f s): 1 warm-up, %d timed" % (first / 1000, len(times))
    return out


def read_inputs(path):
    import numpy as np

    with open(path, "rb") as f:
        buf = f.read()
    (hlen,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + hlen].decode("utf8"))
    base = 8 + hlen
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        dt = np.float32 if v["dtype"] == "F32" else np.int32
        out[k] = np.frombuffer(buf, dtype=dt, count=(e - b) // 4, offset=base + b).copy()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--fw", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    fw = args.fw
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - any import failure means "unavailable"
        emit({"type": "unavailable", "fw": fw, "reason": "import torch failed: %s" % e})
        return
    torch.set_num_threads(args.threads)
    m = QUICK if args.quick else FULL
    notes = ["BLAS: %s" % blas_info(torch)]
    try:
        from functorch import jvp as fjvp

        jvp_name = "functorch.jvp"
    except Exception:  # noqa: BLE001
        fjvp = None
        jvp_name = "torch.autograd.forward_ad"
    notes.append("jvp via " + jvp_name)
    emit(
        {
            "type": "info",
            "fw": fw,
            "label": "PyTorch %d thread%s" % (args.threads, "" if args.threads == 1 else "s"),
            "version": "%s (python %s)" % (torch.__version__, sys.version.split()[0]),
            "notes": notes,
        }
    )
    data = read_inputs(args.inputs)

    def t(name, shape):
        return torch.from_numpy(data[name]).reshape(shape)

    def linear(name, i, o):
        lin = nn.Linear(i, o)
        with torch.no_grad():
            lin.weight.copy_(t(name + ".w", (o, i)))
            lin.bias.copy_(t(name + ".b", (o,)))
        return lin

    def conv(name, i, o):
        c = nn.Conv2d(i, o, 5, padding=2)
        with torch.no_grad():
            c.weight.copy_(t(name + ".w", (o, i, 5, 5)))
            c.bias.copy_(t(name + ".b", (o,)))
        return c

    def mlp(prefix, sizes):
        return nn.Sequential(
            linear(prefix + ".l0", sizes[0], sizes[1]),
            nn.ReLU(),
            linear(prefix + ".l1", sizes[1], sizes[2]),
            nn.ReLU(),
            linear(prefix + ".l2", sizes[2], sizes[3]),
        )

    def train_step(model, opt, x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def case_sgemm(n):
        a = t("sgemm.a.%d" % n, (n, n))
        b = t("sgemm.b.%d" % n, (n, n))
        return lambda: torch.mm(a, b)[0, 0].item()

    def case_mlp():
        model = mlp("mlp", (784, 512, 256, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = t("mlp.x", (128, 784))
        y = t("mlp.y", (128,)).long()
        return lambda: train_step(model, opt, x, y).item()

    def case_bf16_gemm(n):
        # bfloat16 operands; PyTorch 1.13's CPU bf16 mm (oneDNN) accumulates in float32
        a = t("sgemm.a.%d" % n, (n, n)).bfloat16()
        b = t("sgemm.b.%d" % n, (n, n)).bfloat16()
        return lambda: torch.mm(a, b)[0, 0].item()

    def case_bf16_mlp():
        model = mlp("mlp", (784, 512, 256, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = t("mlp.x", (128, 784))
        y = t("mlp.y", (128,)).long()

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()

        return step

    def cnn_model():
        return nn.Sequential(
            conv("cnn.c1", 1, 32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            conv("cnn.c2", 32, 64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            linear("cnn.f1", 3136, 128),
            nn.ReLU(),
            linear("cnn.f2", 128, 10),
        )

    def case_cnn():
        model = cnn_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = t("cnn.x", (64, 1, 28, 28))
        y = t("cnn.y", (64,)).long()
        return lambda: train_step(model, opt, x, y).item()

    def case_bf16_cnn():
        model = cnn_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = t("cnn.x", (64, 1, 28, 28))
        y = t("cnn.y", (64,)).long()

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()

        return step

    def load_state(model, prefix):
        # the shared initial weights, by state-dict name (flat arrays reshaped to the model's shapes)
        sd = model.state_dict()
        model.load_state_dict({k: t(prefix + k, tuple(v.shape)) for k, v in sd.items()})

    class CharTransformer(nn.Module):
        # chainrule's src/cli/text-model.ts CharTransformer: token + learned position embeddings, pre-norm GELU
        # TransformerEncoder with a final LayerNorm, causal mask, Linear head; the same parameter names
        def __init__(self, c):
            super().__init__()
            e = c["width"]
            self.tok = nn.Embedding(c["vocab"], e)
            self.pos = nn.Embedding(c["context"], e)
            layer = nn.TransformerEncoderLayer(
                e, c["heads"], 4 * e, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            self.blocks = nn.TransformerEncoder(layer, c["layers"], norm=nn.LayerNorm(e), enable_nested_tensor=False)
            self.head = nn.Linear(e, c["vocab"])
            n = c["context"]
            self.register_buffer("mask", torch.triu(torch.full((n, n), float("-inf")), 1), persistent=False)

        def forward(self, x):
            n = x.shape[1]
            h = self.tok(x) + self.pos(torch.arange(n))
            return self.head(self.blocks(h, mask=self.mask[:n, :n])).reshape(-1, self.head.out_features)

    class RowLstm(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.lstm = nn.LSTM(c["input"], c["hidden"], batch_first=True)
            self.fc = nn.Linear(c["hidden"], c["classes"])

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1])

    def case_transformer():
        c = TRANSFORMER
        model = CharTransformer(c)
        load_state(model, "tfm.")
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = t("tfm.x", (c["batch"], c["context"])).long()
        y = t("tfm.y", (c["batch"] * c["context"],)).long()
        return lambda: train_step(model, opt, x, y).item()

    def case_lstm():
        c = LSTM_BENCH
        model = RowLstm(c)
        load_state(model, "lstm.")
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = t("lstm.x", (c["batch"], c["steps"], c["input"]))
        y = t("lstm.y", (c["batch"],)).long()
        return lambda: train_step(model, opt, x, y).item()

    def mlp_params():
        # the MLP's weights as plain tensors, PyTorch layout w [out, in]
        sizes = (784, 512, 256, 10)
        return [
            (t("mlp.l%d.w" % i, (sizes[i + 1], sizes[i])), t("mlp.l%d.b" % i, (sizes[i + 1],)))
            for i in range(3)
        ]

    def mlp_loss(p, x, y1h, n):
        h = x
        for i, (w, b) in enumerate(p):
            h = h @ w.t() + b
            if i < len(p) - 1:
                h = h.relu()
        return -(h.log_softmax(-1) * y1h).sum() / n

    def mlp_onehot():
        return F.one_hot(t("mlp.y", (128,)).long(), 10).float()

    def case_perexample():
        from functorch import grad as fgrad
        from functorch import vmap as fvmap

        p = mlp_params()
        x = t("mlp.x", (128, 784))
        y1h = mlp_onehot()
        per_ex = fvmap(fgrad(lambda q, xi, yi: mlp_loss(q, xi, yi, 1)), in_dims=(None, 0, 0))
        return lambda: per_ex(p, x, y1h)[2][1][5, 3].item()

    def case_batched():
        p = [(w.requires_grad_(), b.requires_grad_()) for w, b in mlp_params()]
        x = t("mlp.x", (128, 784))
        y1h = mlp_onehot()
        flat = [v for wb in p for v in wb]
        return lambda: torch.autograd.grad(mlp_loss(p, x, y1h, 128), flat)[5][3].item()

    def case_attention():
        # PyTorch 1.13 has no fused scaled_dot_product_attention: the composition, as chainrule's composed row
        shape = (ATTN["batch"], ATTN["heads"], ATTN["len"], ATTN["dim"])
        q, k, v = [t("attn.%s" % n, shape).requires_grad_() for n in "qkv"]
        w = t("attn.w", shape)
        scale = 1.0 / math.sqrt(shape[-1])

        def step():
            out = torch.softmax(q @ k.transpose(-2, -1) * scale, -1) @ v
            return torch.autograd.grad((out * w).sum(), (q, k, v))[0][0, 0, 0, 0].item()
        return step

    def case_add(k):
        zero = torch.zeros(1)
        one = torch.ones(1)

        def step():
            acc = zero
            for _ in range(k):
                acc = acc + one
            return acc.item()

        return step

    def case_grad(k):
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        z = torch.tensor(1.0, requires_grad=True)

        def step():
            for _ in range(k):
                x.grad = None
                y.grad = None
                z.grad = None
                (x * y + z).backward()
            return x.grad.item()

        return step

    def case_jvp(k):
        p = (torch.tensor(2.0), torch.tensor(3.0), torch.tensor(1.0))
        tg = (torch.tensor(1.0), torch.tensor(1.0), torch.tensor(1.0))

        def f(a, b, c):
            return a * b + c

        if fjvp is not None:

            def step():
                r = None
                for _ in range(k):
                    r = fjvp(f, p, tg)
                return r[1].item()

            return step
        import torch.autograd.forward_ad as fwAD

        def step_fw():
            r = None
            for _ in range(k):
                with fwAD.dual_level():
                    duals = [fwAD.make_dual(a, b) for a, b in zip(p, tg)]
                    r = fwAD.unpack_dual(f(*duals)).tangent
            return r.item()

        return step_fw

    def e2e():
        images = t("e2e.images", (-1, 784))
        labels = t("e2e.labels", (-1,)).long()
        n = labels.shape[0]
        perm = t("e2e.perm", (-1,)).long()
        epochs = perm.shape[0] // n
        if args.quick:
            epochs = min(epochs, 1)
        model = mlp("e2e", (784, 256, 128, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        steps = n // 128
        loss = None
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for e in range(epochs):
            for s in range(steps):
                idx = perm[e * n + s * 128 : e * n + (s + 1) * 128]
                loss = train_step(model, opt, images[idx], labels[idx])
        final_loss = loss.item()
        seconds = time.perf_counter() - t0
        cpu = (time.process_time() - cpu0) / seconds
        with torch.no_grad():
            acc = (model(images).argmax(1) == labels).float().mean().item()
        return {"seconds": seconds, "accuracy": acc, "finalLoss": final_loss, "epochs": epochs, "cpu": cpu}

    factories = {
        "mlp.step": case_mlp,
        "bf16.mlp": case_bf16_mlp,
        "bf16.cnn": case_bf16_cnn,
        "cnn.step": case_cnn,
        "transformer.step": case_transformer,
        "lstm.step": case_lstm,
        "vmap.perexample": case_perexample,
        "vmap.batched": case_batched,
        "attn.composed": case_attention,
    }
    for n in (128, 256, 512, 1024):
        factories["sgemm.%d" % n] = (lambda n_: lambda: case_sgemm(n_))(n)
    for n in (256, 1024):
        factories["bf16.gemm%d" % n] = (lambda n_: lambda: case_bf16_gemm(n_))(n)
    factories["dispatch.add"] = lambda: case_add(DISPATCH_K["add"])
    factories["dispatch.grad"] = lambda: case_grad(DISPATCH_K["grad"])
    factories["dispatch.jvp"] = lambda: case_jvp(DISPATCH_K["jvp"])
    k_of = {"dispatch.add": DISPATCH_K["add"], "dispatch.grad": DISPATCH_K["grad"], "dispatch.jvp": DISPATCH_K["jvp"]}

    for case in [c for c in args.cases.split(",") if c]:
        try:
            if case == "e2e.mlp":
                emit({"type": "case", "fw": fw, "case": case, "e2e": e2e()})
                continue
            if case == "attn.fused":
                emit({"type": "case", "fw": fw, "case": case, "skip": "PyTorch 1.13 has no fused attention"})
                continue
            if case not in factories:
                emit({"type": "case", "fw": fw, "case": case, "skip": "unknown case"})
                continue
            sample = measure(factories[case](), m)
            emit({"type": "case", "fw": fw, "case": case, "sample": sample, "inner": k_of.get(case, 1)})
        except Exception as e:  # noqa: BLE001 - report and go on with the next case
            emit({"type": "case", "fw": fw, "case": case, "error": "%s: %s" % (type(e).__name__, e)})


def blas_info(torch):
    cfg = torch.__config__.show()
    if "BLAS_INFO=mkl" in cfg:
        return "MKL"
    # Debian's torch links the system libblas.so.3; which implementation it is depends on alternatives.
    try:
        real = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    except OSError:
        real = "unknown"
    if "openblas" in real:
        return "OpenBLAS (%s)" % real
    if "/blas/libblas.so" in real:  # netlib's reference BLAS (libblas.so.3 or libblas.so.3.x.y)
        return "reference BLAS (%s): slow; install libopenblas0-openmp for a fair comparison" % real
    return real


if __name__ == "__main__":
    main()
