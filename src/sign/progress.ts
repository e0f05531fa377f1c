/**
 * A one-line progress bar on stderr for long file hashes, drawn only when stderr is a
 * terminal (never into logs or pipes) and at most ten times a second.
 */

/** Receives byte counts as a file is read. */
export type ProgressListener = (done: number) => void;

/** A drawable progress bar; `finish` clears the line. */
export interface ProgressBar {
  readonly update: ProgressListener;
  finish(): void;
}

const WIDTH = 30;
const MIB = 1024 * 1024;

/** A bar for `total` bytes, or undefined when `stream` is not a terminal or the file is small. */
export function progressBar(
  label: string,
  total: number,
  stream: NodeJS.WriteStream = process.stderr,
  minBytes = 16 * MIB,
): ProgressBar | undefined {
  if (!stream.isTTY || total < minBytes) return undefined;
  const started = Date.now();
  let last = 0;
  const draw = (done: number): void => {
    const fraction = total === 0 ? 1 : Math.min(1, done / total);
    const filled = Math.round(fraction * WIDTH);
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    const rate = done / MIB / seconds;
    stream.write(
      `\r${label} [${"#".repeat(filled)}${".".repeat(WIDTH - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ` +
        `${(done / MIB).toFixed(0)}/${(total / MIB).toFixed(0)} MiB ${rate.toFixed(0)} MiB/s`,
    );
  };
  return {
    update(done) {
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      draw(done);
    },
    finish() {
      stream.write("\r\x1b[K");
    },
  };
}
