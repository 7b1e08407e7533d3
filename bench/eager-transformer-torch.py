"""PyTorch's side of bench/eager-transformer-ab.ts: the bench's char Transformer training step (the model of
bench/torch_bench.py case_transformer: pre-norm GELU TransformerEncoder, 4 layers, width 128, batch 32 x 128,
causal, Adam) on one thread, medians of wall and process CPU time per step over `rounds` steps after 2 warm-up
steps. Weights are random (timing does not depend on them). Run pinned, beside the A/B, and state the load:

    taskset -c 1 python3 bench/eager-transformer-torch.py [rounds]
"""

import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)
V, E, LAYERS, HEADS, T, B = 96, 128, 4, 4, 128, 32


class CharTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(V, E)
        self.pos = nn.Embedding(T, E)
        layer = nn.TransformerEncoderLayer(E, HEADS, 4 * E, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, LAYERS, norm=nn.LayerNorm(E), enable_nested_tensor=False)
        self.head = nn.Linear(E, V)
        self.register_buffer("mask", torch.triu(torch.full((T, T), float("-inf")), 1), persistent=False)

    def forward(self, x):
        h = self.tok(x) + self.pos(torch.arange(x.shape[1]))
        return self.head(self.blocks(h, mask=self.mask)).reshape(-1, V)


model = CharTransformer()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = (torch.arange(B * T) * 13 % V).reshape(B, T)
y = (torch.arange(B * T) * 7 + 3) % V


def step():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 9
for _ in range(2):
    step()
wall, cpu = [], []
for _ in range(rounds):
    c0, t0 = time.process_time(), time.perf_counter()
    step()
    wall.append((time.perf_counter() - t0) * 1000)
    cpu.append((time.process_time() - c0) * 1000)
print(f"torch {torch.__version__} transformer step ({rounds} rounds): {statistics.median(wall):.1f} ms (cpu {statistics.median(cpu):.1f})")
