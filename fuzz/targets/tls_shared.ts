/**
 * Helpers shared by the TLS targets: seeds by handshake type from the captured handshakes,
 * a target built from a message decoder, and running several decoders on one input.
 */
import { TlsError } from "../../src/tls/alert.ts";
import type { HandshakeType } from "../../src/tls/constants.ts";
import type { Corpus } from "../corpus.ts";
import type { FuzzTarget, PreparedTarget } from "../target.ts";

/** Bodies of the captured handshake messages of these types. */
export function bodiesOf(corpus: Corpus, ...types: HandshakeType[]): Buffer[] {
  return corpus.handshakeMessages.filter((m) => types.includes(m[0]!)).map((m) => m.subarray(4));
}

/** TlsError is the only refusal the TLS stack may raise on peer input. */
export const tlsExpected = (err: unknown): boolean => err instanceof TlsError;

/**
 * Runs every decoder on the same input. A non-TlsError from any of them is rethrown at once;
 * otherwise the last TlsError (if any) is, so refusals still count as typed.
 */
export function runAll(...decoders: ReadonlyArray<() => unknown>): void {
  let refusal: unknown;
  for (const decode of decoders) {
    try {
      decode();
    } catch (err) {
      if (!tlsExpected(err)) throw err;
      refusal = err;
    }
  }
  if (refusal !== undefined) throw refusal;
}

/** What a handshake-message target needs beyond its name. */
export interface MessageTargetSpec {
  name: string;
  about: string;
  /** Captured messages of these types seed the target. */
  types: HandshakeType[];
  /** Extra seeds made with the stack's encoders. */
  extraSeeds?: (corpus: Corpus) => Buffer[];
  /** Builds the per-input run function (may prepare keys from the corpus). */
  makeRun: (corpus: Corpus) => (body: Buffer) => void;
}

/** A target that feeds message bodies to decoders. */
export function messageTarget(spec: MessageTargetSpec): FuzzTarget {
  return {
    name: spec.name,
    about: spec.about,
    async prepare(corpus): Promise<PreparedTarget> {
      const seeds = [...bodiesOf(corpus, ...spec.types), ...(spec.extraSeeds?.(corpus) ?? [])];
      return { seeds, run: spec.makeRun(corpus), expected: tlsExpected };
    },
  };
}
