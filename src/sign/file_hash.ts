/**
 * Reading files of any size in constant memory: a chunk stream for handles that hash
 * themselves, and a streaming digest for handles that sign a precomputed digest.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { ProgressListener } from "./progress.ts";

/** Chunk size for file reads: large enough for throughput, small enough to keep memory flat. */
export const CHUNK_BYTES = 1024 * 1024;

/** The file's bytes as a stream of chunks, reporting the running byte count. */
export async function* fileChunks(path: string, onProgress?: ProgressListener): AsyncGenerator<Buffer> {
  let done = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK_BYTES })) {
    const bytes = chunk as Buffer;
    done += bytes.length;
    onProgress?.(done);
    yield bytes;
  }
}

/** The digest of a file, hashed as it is read. */
export async function hashFile(path: string, hash: string, onProgress?: ProgressListener): Promise<Buffer> {
  const h = createHash(hash);
  for await (const chunk of fileChunks(path, onProgress)) h.update(chunk);
  return h.digest();
}
