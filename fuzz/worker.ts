/**
 * Worker-thread side of `npm run fuzz`: prepares one target from the corpus, runs the loop,
 * and posts each new distinct failure as soon as it is seen (so it survives a later hang).
 */
import { parentPort, workerData } from "node:worker_threads";
import { type Corpus, reviveCorpus } from "./corpus.ts";
import { fuzzLoop, type SharedState } from "./engine.ts";
import { targetByName } from "./targets/index.ts";

/** What the parent sends. */
export interface WorkerInput {
  target: string;
  seconds: number;
  seed: number;
  maxHeapGrowthMb: number;
  corpus: Corpus;
  shared: SharedState;
  /** Where each batch is written before it runs (fuzz/crash.ts). */
  batchFile?: string;
}

/** What the worker posts back. */
export type WorkerMessage =
  | { kind: "ready" }
  | { kind: "failure"; key: string; message: string; stack: string; input: Uint8Array }
  | { kind: "done"; inputs: number; rejected: number; seconds: number; heapGrowthMb: number };

const port = parentPort;
if (!port) throw new Error("fuzz/worker.ts runs only as a worker thread");
const job = workerData as WorkerInput;
const target = targetByName(job.target);
const prepared = await target.prepare(reviveCorpus(job.corpus));
const seen = new Set<string>();
port.postMessage({ kind: "ready" } satisfies WorkerMessage);
try {
  const stats = await fuzzLoop(prepared, {
    seconds: job.seconds,
    seed: job.seed,
    shared: job.shared,
    maxHeapGrowthMb: job.maxHeapGrowthMb,
    ...(job.batchFile ? { batchFile: job.batchFile } : {}),
    onFailure(f) {
      if (seen.has(f.key)) return;
      seen.add(f.key);
      port.postMessage({ kind: "failure", ...f } satisfies WorkerMessage);
    },
  });
  port.postMessage({ kind: "done", ...stats } satisfies WorkerMessage);
} finally {
  await prepared.close?.();
}
