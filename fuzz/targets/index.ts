/** The registry of fuzz targets, in the order `npm run fuzz` runs them. */
import type { FuzzTarget } from "../target.ts";
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

/** The target with this name; throws naming the known ones otherwise. */
export function targetByName(name: string): FuzzTarget {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`unknown fuzz target '${name}' (known: ${TARGETS.map((x) => x.name).join(", ")})`);
  return t;
}
