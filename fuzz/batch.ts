/**
 * The batch file: the inputs of the batch being fuzzed, written before the batch runs. An
 * input that ends the whole process (a native assertion in OpenSSL or Node, which no
 * exception handler sees) takes the worker's shared memory with it; the batch file survives,
 * and fuzz/crash.ts replays it one input at a time to find the input that did it.
 * Format: a sequence of (u32 big-endian length, bytes).
 */

/** Encodes inputs as a batch file. */
export function encodeBatch(inputs: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const input of inputs) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(input.length);
    parts.push(length, input);
  }
  return Buffer.concat(parts);
}

/** Decodes a batch file; a truncated last entry (the writer died mid-write) is dropped. */
export function decodeBatch(file: Buffer): Buffer[] {
  const inputs: Buffer[] = [];
  let at = 0;
  while (at + 4 <= file.length) {
    const length = file.readUInt32BE(at);
    if (at + 4 + length > file.length) break;
    inputs.push(file.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return inputs;
}
