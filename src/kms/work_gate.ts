/**
 * A bound on expensive work that clients can ask for: `limit` jobs run at once, up to `queue`
 * more wait their turn in arrival order, and the rest are refused at once. Key pair generation
 * runs on libuv's thread pool (4 threads by default), which every Sign, Decrypt and file read of
 * the process shares: unbounded, a burst of RSA key pair requests would starve them all.
 */
export class WorkGate {
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(
    /** Jobs that run at the same time. */
    readonly limit: number,
    /** Jobs that may wait for a slot; one more is refused. */
    readonly queue: number,
  ) {}

  /** Jobs running now. */
  get running(): number {
    return this.#running;
  }

  /** Jobs waiting now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `job` in a slot, after waiting for one if need be; throws `refusal()` when the queue is full. */
  async run<T>(job: () => Promise<T>, refusal: () => Error): Promise<T> {
    if (this.#running < this.limit) {
      this.#running++;
    } else {
      if (this.#waiting.length >= this.queue) throw refusal();
      // The finishing job hands its slot straight to the first waiter, so #running stays put.
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    try {
      return await job();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
