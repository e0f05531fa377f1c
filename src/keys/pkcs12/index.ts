/**
 * PKCS#12 (PFX), written and read in one place for the CA (`cert pfx`) and the KMS (an access
 * point's client key): modern (PBES2, AES-256, SHA-256 MAC) and legacy (3DES / RC2, SHA-1 MAC)
 * writers and a bounded reader. The KMS imports the legacy writer and the reader from their
 * files, so a process that opens a `kms://` key never loads pkijs.
 */
export { PfxError, type Pkcs12Contents } from "./contents.ts";
export { MAX_PFX_BYTES, MAX_PFX_ITERATIONS, type ReadPfx, readPfx } from "./read.ts";
export {
  type CertBagCipher,
  type LegacyPfxOptions,
  writeLegacyPfx,
  writeLegacyPfxContents,
} from "./write_legacy.ts";
export { writeModernPfx } from "./write_modern.ts";
