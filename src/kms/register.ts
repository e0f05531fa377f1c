/**
 * Registers the `kms` key backend without loading the KMS client: the client (protobuf, PKCS#12,
 * HTTPS) loads on the first `kms://` reference opened, so a process that never opens one (the
 * CLI signing with a file key, a library user with a token key) does not pay for it.
 * Importing `./handle.ts` later registers the same backend directly; either order works.
 */
import { registerKeyBackend } from "../keys/index.ts";

registerKeyBackend("kms", {
  open: async (ref) => (await import("./handle.ts")).openKmsKey(ref),
});
