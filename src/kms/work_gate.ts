/**
 * A bound on expensive work that clients can ask for: `limit` jobs run at once, up to `queue`
 * more wait their turn in arrival order (at most `perOwner` of them for any one owner, so one
 * client cannot hold the whole queue), and the rest are refused at once. A waiting job whose
 * client has gone (its signal aborts) leaves the queue without running. Key pair generation runs
 * on libuv's thread pool (4 threads by default), which every Sign, Decrypt and file read of the
 * process shares: unbounded, a burst of RSA key pair requests would starve them all.
 */

/** How one job asks for a slot. */
export interface GateTicket {
  /** Whose job it is (an access point id): `perOwner` bounds each owner's waiting jobs. */
  readonly owner: string;
  /** The error a job refused for a full queue gets. */
  readonly refusal: () => Error;
  /** Aborted when nobody waits for the result any more; a waiting job then leaves the queue. */
  readonly signal?: AbortSignal;
}

interface Waiter {
  readonly owner: string;
  readonly start: () => void;
}

/** A bounded, fair, cancellable queue in front of expensive work. */
export class WorkGate {
  #running = 0;
  readonly #waiting: Waiter[] = [];

  constructor(
    /** Jobs that run at the same time. */
    readonly limit: number,
    /** Jobs that may wait for a slot; one more is refused. */
    readonly queue: number,
    /** Waiting jobs one owner may have. */
    readonly perOwner: number,
  ) {}

  /** Jobs running now. */
  get running(): number {
    return this.#running;
  }

  /** Jobs waiting now, or those of one owner. */
  waiting(owner?: string): number {
    return owner === undefined ? this.#waiting.length : this.#waiting.filter((w) => w.owner === owner).length;
  }

  /** Runs `job` in a slot, after waiting for one if need be; refused when the queue (or the owner's share) is full. */
  async run<T>(job: () => Promise<T>, ticket: GateTicket): Promise<T> {
    if (this.#running < this.limit) {
      this.#running++;
    } else {
      if (this.#waiting.length >= this.queue || this.waiting(ticket.owner) >= this.perOwner)
        throw ticket.refusal();
      // The finishing job hands its slot straight to the first waiter, so #running stays put.
      await this.#wait(ticket);
    }
    try {
      return await job();
    } finally {
      const next = this.#waiting.shift();
      if (next) next.start();
      else this.#running--;
    }
  }

  #wait(ticket: GateTicket): Promise<void> {
    const { signal, owner } = ticket;
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#waiting.indexOf(waiter);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(signal?.reason ?? new Error("abandoned"));
      };
      const waiter: Waiter = {
        owner,
        start: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      this.#waiting.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}
