// Run under mpirun by faults.test.ts. FAULT=throw: rank 1 throws while the others wait in an all-reduce;
// FAULT=timeout: rank 1 never joins the all-reduce (it is stuck), the others give up after timeoutMs;
// FAULT=exit: rank 1 exits with code 3. In every case the job must end promptly, with a message naming it.
import { distributed, tensor } from "../../src/node.ts";

const fault = process.env.FAULT ?? "throw";
const { rank } = distributed.initProcessGroup({ timeoutMs: fault === "timeout" ? 1500 : 60000 });
distributed.allReduce(tensor([1, 2, 3]), "sum");
if (rank === 1) {
  if (fault === "throw") throw new Error("injected failure on rank 1");
  if (fault === "exit") process.exit(3);
  if (fault === "timeout") Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000); // stuck
}
distributed.allReduce(tensor([1, 2, 3]), "sum");
console.log(`rank ${rank} finished (should not happen)`);
