/**
 * The progress bar appears on a terminal only: under a pseudo-terminal (`script`) signing a
 * large file draws it on stderr; into a pipe nothing is drawn (see sign.test.ts).
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { HSMKIT_BIN } from "../helpers/hsmkit.ts";
import { runCommand } from "../helpers/process.ts";

const dir = mkdtempSync(join(tmpdir(), "hsmkit-progress-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("hsmkit sign progress bar", () => {
  it("is drawn on a terminal for a large file", async () => {
    const key = join(dir, "k.pem");
    writeFileSync(
      key,
      generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }),
    );
    const file = join(dir, "big.bin");
    writeFileSync(file, "");
    truncateSync(file, 64 * 1024 * 1024);
    const command = [
      HSMKIT_BIN,
      "sign",
      "--key",
      key,
      "--alg",
      "ECDSA_SHA_256",
      "--in",
      file,
      "--out",
      join(dir, "s.sig"),
    ]
      .map((a) => `'${a}'`)
      .join(" ");
    const r = await runCommand("script", ["-qec", command, "/dev/null"], { timeoutMs: 120_000 });
    assert.equal(r.exitCode, 0, r.output);
    assert.match(r.output, /signing \[#+\.*\] +\d+% \d+\/64 MiB/);
    assert.match(r.output, /100% 64\/64 MiB/);
  });
});
