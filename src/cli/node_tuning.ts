/**
 * V8 settings for the `hsmkit` process, applied before any command runs.
 *
 * The TLS record layer allocates a Buffer per record (node:crypto's cipher update always returns
 * a fresh one). By default V8 frees ArrayBuffer memory on a helper thread; with one allocation
 * per 16 KiB record, the hand-off and the allocator contention between the two threads cost more
 * than the freeing itself: measured on Node 20, a 16 KiB AES-GCM update takes 9.3 us of process
 * CPU with concurrent sweeping and 6.5 us without, a 1 KiB one 7.3 us against 0.9 us, and
 * `bench/client.ts` moved from 2.3 to 1.25 ms of client CPU per MiB received. Sweeping on the
 * main thread instead lengthens each young-generation pause by the same freeing work.
 *
 * Library users get the same effect by starting Node with `--no-concurrent-array-buffer-sweeping`
 * (V8 does not accept it in NODE_OPTIONS); the library never changes process-wide settings itself.
 */
import { setFlagsFromString } from "node:v8";

/** The V8 flags `hsmkit` runs with. */
export const HSMKIT_V8_FLAGS = ["--no-concurrent-array-buffer-sweeping"] as const;

/** Applies {@link HSMKIT_V8_FLAGS} to this process (V8 reads this flag at each collection). */
export function tuneNodeForTls(): void {
  for (const flag of HSMKIT_V8_FLAGS) setFlagsFromString(flag);
}
