/**
 * `--profile strict|rfc5280`: the certificate profile peers' chains must meet, the same
 * option on `cert verify`, `curl` and `serve`.
 */
import { Option } from "commander";
import { VALIDATION_PROFILES, type ValidationProfile } from "../tls/x509/profile.ts";

export type { ValidationProfile } from "../tls/x509/profile.ts";

/** The option, defaulting to strict (`what` says whose certificates it applies to). */
export function validationProfileOption(what: string): Option {
  return new Option(
    "--profile <profile>",
    `certificate profile for ${what}: strict (RFC 5280 and the web PKI's rules: a leaf needs an extendedKeyUsage for its purpose) or rfc5280 (RFC 5280 only, for private PKIs)`,
  )
    .choices([...VALIDATION_PROFILES])
    .default("strict" satisfies ValidationProfile);
}
