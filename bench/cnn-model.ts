/**
 * The bench CNN (bench/workloads.ts, bench/peers/chainrule.ts cnnStep) built from chainrule's nn with fresh
 * initial weights, for the bench scripts that time its kernels and steps (conv-native, jit-profile,
 * bf16-conv-ab): conv 5x5x32, relu, pool, conv 5x5x64, relu, pool, fc 128, relu, fc 10, on [N, 1, 28, 28].
 */
import { Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential } from "../src/nn/index.ts";

export function benchCnn(): Sequential {
  return new Sequential(
    new Conv2d(1, 32, 5, { padding: 2 }),
    new ReLU(),
    new MaxPool2d(2),
    new Conv2d(32, 64, 5, { padding: 2 }),
    new ReLU(),
    new MaxPool2d(2),
    new Flatten(),
    new Linear(64 * 7 * 7, 128),
    new ReLU(),
    new Linear(128, 10),
  );
}
