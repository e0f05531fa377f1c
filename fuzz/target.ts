/**
 * What a fuzz target is: how to prepare it (seeds, keys, a store), how to generate inputs,
 * what to run on one input, and which errors are the parser's own typed refusals.
 */
import type fc from "fast-check";
import type { Corpus } from "./corpus.ts";

/** A prepared target, ready to take inputs. */
export interface PreparedTarget {
  /** Valid inputs to mutate (real messages, certificates, references). */
  readonly seeds: readonly Buffer[];
  /** A structure-aware generator; mutated seeds and random bytes are always mixed in. */
  readonly generate?: fc.Arbitrary<Buffer>;
  /** Runs the code under test on one input; a returned promise is awaited. */
  run(input: Buffer): unknown;
  /** True for the errors the code is designed to throw on bad input. */
  expected(err: unknown): boolean;
  /** Releases what `prepare` opened. */
  close?(): Promise<void>;
}

/** A named fuzz target. */
export interface FuzzTarget {
  /** Short name used in FUZZ_TARGETS and reproducer files. */
  readonly name: string;
  /** One line: what is fuzzed and which attacker reaches it. */
  readonly about: string;
  /** Builds seeds and state from the shared corpus. */
  prepare(corpus: Corpus): Promise<PreparedTarget>;
}

/** An `expected` predicate accepting instances of the given error classes. */
export function typedErrors(...classes: ReadonlyArray<abstract new (...args: never[]) => Error>) {
  return (err: unknown): boolean => classes.some((c) => err instanceof c);
}

/** Bytes as text (latin1 keeps every byte, so a reproducer's hex is exactly the input). */
export function asText(input: Buffer): string {
  return input.toString("latin1");
}

/** Text as seed bytes (the inverse of {@link asText} for latin1 text). */
export function textSeeds(texts: readonly string[]): Buffer[] {
  return texts.map((t) => Buffer.from(t, "latin1"));
}

/** What a target without state needs: seeds from the corpus, an optional generator, the run. */
export interface SimpleTargetSpec {
  name: string;
  about: string;
  seeds(corpus: Corpus): Buffer[];
  generate?: (corpus: Corpus) => fc.Arbitrary<Buffer> | undefined;
  expected(err: unknown): boolean;
  run(input: Buffer): unknown;
}

/** A target whose preparation is only picking its seeds. */
export function simpleTarget(spec: SimpleTargetSpec): FuzzTarget {
  return {
    name: spec.name,
    about: spec.about,
    async prepare(corpus) {
      const generate = spec.generate?.(corpus);
      return {
        seeds: spec.seeds(corpus),
        ...(generate ? { generate } : {}),
        expected: spec.expected,
        run: spec.run,
      };
    },
  };
}
