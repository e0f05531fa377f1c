/** The registry of fuzz targets, in the order `npm run fuzz` runs them. */
import { type FuzzTarget, simpleTarget } from "../target.ts";
import { FILE_TARGETS } from "./files.ts";
import { KMS_TARGETS } from "./kms.ts";
import { REF_TARGETS } from "./refs.ts";
import { TLS_HANDSHAKE_TARGETS } from "./tls_handshake.ts";
import { TLS_MESSAGE_TARGETS } from "./tls_messages.ts";
import { TLS_RECORD_TARGETS } from "./tls_records.ts";
import { X509_TARGETS } from "./x509.ts";

/** Every target. */
export const TARGETS: readonly FuzzTarget[] = [
  ...TLS_RECORD_TARGETS,
  ...TLS_MESSAGE_TARGETS,
  ...TLS_HANDSHAKE_TARGETS,
  ...X509_TARGETS,
  ...FILE_TARGETS,
  ...REF_TARGETS,
  ...KMS_TARGETS,
];

/**
 * A target that aborts the process on inputs starting with "a", to test that such inputs are
 * found and saved (test/fuzz_crash.test.ts). Only with FUZZ_SELF_TEST_ABORT=1.
 */
const SELF_TEST_ABORT = simpleTarget({
  name: "self-test-abort",
  about: 'aborts the process on inputs starting with "a" (FUZZ_SELF_TEST_ABORT=1 only)',
  seeds: () => [Buffer.from("abort")],
  expected: () => true,
  run(input) {
    // process.abort() is not available in worker threads; the signal ends the process alike.
    if (input[0] === 0x61) process.kill(process.pid, "SIGABRT");
  },
});

function known(): readonly FuzzTarget[] {
  return process.env.FUZZ_SELF_TEST_ABORT === "1" ? [...TARGETS, SELF_TEST_ABORT] : TARGETS;
}

/** The target with this name; throws naming the known ones otherwise. */
export function targetByName(name: string): FuzzTarget {
  const t = known().find((x) => x.name === name);
  if (!t)
    throw new Error(
      `unknown fuzz target '${name}' (known: ${known()
        .map((x) => x.name)
        .join(", ")})`,
    );
  return t;
}
