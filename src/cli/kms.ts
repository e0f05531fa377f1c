/**
 * `hsmkit kms ...`: run the KMS (`serve`) and administer its data directory (keys, aliases,
 * access points, the instance CA, the audit log). Thin over src/kms/.
 */
import { copyFileSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import {
  accessPointTable,
  adminCreateAccessPoint,
  adminCreateKey,
  adminDeleteAlias,
  adminRevokeAccessPoint,
  adminRotateKey,
  adminSetAlias,
  adminSetKeyState,
  adminVerifyAudit,
  formatTable,
  keyTable,
} from "../kms/admin.ts";
import { KmsServer } from "../kms/server.ts";
import { CliError, messageWithFlags } from "./errors.ts";
import { parseListen, stopSignal } from "./input.ts";
import { type MasterOptions, masterOptions, openInstance, out, withInstance } from "./kms_common.ts";
import { registerSecrets } from "./kms_secret.ts";

/** A flag's value as a number > 0 (an integer when asked), or a one-line CliError naming the flag. */
function positiveNumber(text: string, flag: string, integer = false): number {
  const n = Number(text);
  if (!(integer ? Number.isInteger(n) : Number.isFinite(n)) || n <= 0)
    throw new CliError(`kms: ${flag} wants a positive ${integer ? "integer" : "number"}, got "${text}"`);
  return n;
}

/** The flags of `kms serve`. */
type ServeOptions = MasterOptions & {
  listen: string;
  hostname?: string[];
  maxInflight: string;
  headersTimeout: string;
  bodyTimeout: string;
  quiet?: boolean;
};

/** Adds `kms serve`. */
function registerServe(kms: Command): void {
  masterOptions(
    kms.command("serve").description("run the KMS instance endpoint (creates the instance on first start)"),
  )
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:8443")
    .option("--hostname <name...>", "extra DNS names / addresses for the server certificate")
    .option("--max-inflight <n>", "authenticated requests handled at once before Rejected.Throttling", "256")
    .option("--headers-timeout <s>", "seconds for the TLS handshake, then for the request headers", "10")
    .option("--body-timeout <s>", "seconds for the request body once the headers are in", "10")
    .option("--quiet", "no per-request log lines")
    .action(runKmsServe);
}

/** Runs `hsmkit kms serve` until SIGTERM or SIGINT. */
async function runKmsServe(o: ServeOptions): Promise<void> {
  const listen = parseListen(o.listen);
  if (!listen) throw new CliError(`kms: --listen wants HOST:PORT, got "${o.listen}"`);
  const { host, port } = listen;
  const maxInflight = positiveNumber(o.maxInflight, "--max-inflight", true);
  const headersTimeoutMs = positiveNumber(o.headersTimeout, "--headers-timeout") * 1000;
  const bodyTimeoutMs = positiveNumber(o.bodyTimeout, "--body-timeout") * 1000;
  const instance = await openInstance(o, true);
  let server: KmsServer;
  try {
    server = await KmsServer.start({
      instance,
      host,
      port,
      hostnames: o.hostname ?? [],
      maxInflight,
      headersTimeoutMs,
      bodyTimeoutMs,
      ...(o.quiet ? {} : { log: out }),
    });
  } catch (err) {
    await instance.close();
    throw new CliError(`kms: cannot listen on ${o.listen}: ${messageWithFlags(err)}`);
  }
  out(`kms: instance ${instance.id}, master key: ${instance.master.description}`);
  out(`kms: instance CA ${instance.dataDir === undefined ? "(hsmkit kms ca --out FILE)" : instance.caPath}`);
  out(`kms: endpoint https://${server.endpoint}`);
  out(`listening on ${server.endpoint}`);
  await stopSignal();
  await server.close();
  await instance.close();
}

/** Adds `kms init`. */
function registerInit(kms: Command): void {
  masterOptions(
    kms.command("init").description("create the instance (CA, store, master key) without serving"),
  ).action((o: MasterOptions) =>
    withInstance(
      o,
      (i) => {
        const where = i.dataDir === undefined ? i.store.driver.description : i.dataDir;
        out(`kms: instance ${i.id} in ${where}${i.dataDir === undefined ? "" : `, CA ${i.caPath}`}`);
      },
      true,
    ),
  );
}

/** Adds `kms key create`. */
function registerKeyCreate(key: Command): void {
  masterOptions(key.command("create").description("create a key; prints its id last"))
    .requiredOption(
      "--spec <spec>",
      "RSA_2048 | RSA_3072 | RSA_4096 | EC_P256 | EC_P384 | Aliyun_AES_256 | AES_256",
    )
    .requiredOption("--usage <usage>", "SIGN/VERIFY | ENCRYPT/DECRYPT")
    .option("--description <text>", "free text", "")
    .option("--alias <alias/name>", "also create this alias (refused when it exists)")
    .action((o: MasterOptions & { spec: string; usage: string; description: string; alias?: string }) =>
      withInstance(o, async (i) => {
        const k = await adminCreateKey(i, o.spec, o.usage, o.description, o.alias);
        out(k.id);
      }),
    );
}

/** Adds `kms key list`. */
function registerKeyList(key: Command): void {
  masterOptions(key.command("list").description("list keys")).action((o: MasterOptions) =>
    withInstance(o, async (i) =>
      out(formatTable(["KEY", "SPEC", "USAGE", "STATE", "VERSIONS", "ALIASES"], await keyTable(i))),
    ),
  );
}

/** Adds `kms key enable`, `disable`, `schedule-deletion` and `cancel-deletion`. */
function registerKeyStateChanges(key: Command): void {
  for (const [name, action, help] of [
    ["enable", "enable", "enable a key"],
    ["disable", "disable", "disable a key (it refuses every operation)"],
    ["schedule-deletion", "schedule-deletion", "mark a key PendingDeletion"],
    ["cancel-deletion", "cancel-deletion", "take a key out of PendingDeletion (it becomes Disabled)"],
  ] as const) {
    masterOptions(key.command(name).description(help))
      .requiredOption("--key <id|alias>", "the key")
      .option("--days <n>", "pending window for schedule-deletion", "7")
      .action((o: MasterOptions & { key: string; days: string }) =>
        withInstance(o, async (i) => {
          const k = await adminSetKeyState(i, o.key, action, Number(o.days));
          out(`${k.id} ${k.state}${k.deletionDate ? ` (deletion after ${k.deletionDate})` : ""}`);
        }),
      );
  }
}

/** Adds `kms key rotate`. */
function registerKeyRotate(key: Command): void {
  masterOptions(key.command("rotate").description("add a key version; new operations use it"))
    .requiredOption("--key <id|alias>", "the key")
    .action((o: MasterOptions & { key: string }) =>
      withInstance(o, async (i) => {
        const v = await adminRotateKey(i, o.key);
        out(`${v.keyId} v${v.seq}`);
      }),
    );
}

/** Adds `kms key public`. */
function registerKeyPublic(key: Command): void {
  masterOptions(key.command("public").description("print a key's public key (PEM)"))
    .requiredOption("--key <id|alias>", "the key")
    .action((o: MasterOptions & { key: string }) =>
      withInstance(o, async (i) => {
        const k = await i.keys.require(o.key);
        process.stdout.write(i.keys.publicKeyPem(await i.keys.primaryVersion(k.id)));
      }),
    );
}

/** Adds `kms key`. */
function registerKeys(kms: Command): void {
  const key = kms.command("key").description("manage keys");
  registerKeyCreate(key);
  registerKeyList(key);
  registerKeyStateChanges(key);
  registerKeyRotate(key);
  registerKeyPublic(key);
}

/** Adds `kms alias set` and `kms alias delete`. */
function registerAliases(kms: Command): void {
  const alias = kms.command("alias").description("manage key aliases");
  masterOptions(alias.command("set").description("point alias/NAME at a key"))
    .requiredOption("--alias <alias/name>", "the alias")
    .requiredOption("--key <id|alias>", "the key")
    .action((o: MasterOptions & { alias: string; key: string }) =>
      withInstance(o, (i) => adminSetAlias(i, o.alias, o.key)),
    );
  masterOptions(alias.command("delete").description("remove an alias"))
    .requiredOption("--alias <alias/name>", "the alias")
    .action((o: MasterOptions & { alias: string }) => withInstance(o, (i) => adminDeleteAlias(i, o.alias)));
}

/** Adds `kms ap create`. */
function registerAccessPointCreate(ap: Command): void {
  masterOptions(
    ap.command("create").description("create an access point; writes its client key and password files"),
  )
    .requiredOption("--name <name>", "access point name")
    .option("--keys <patterns>", "comma-separated key ids / aliases / patterns, e.g. 'key-*'")
    .option(
      "--secrets <patterns>",
      "comma-separated secret names / patterns GetSecretValue may read, e.g. 'db-*' (--keys grants none)",
    )
    .option("--operations <ops>", "comma-separated API names, or *", "*")
    .option("--source-ip <cidrs>", "comma-separated source addresses / CIDR blocks (default any)", "")
    .option("--cert-bag <cipher>", "PKCS#12 certificate safe cipher: 3des | rc2-40", "3des")
    .requiredOption("--out <dir>", "directory for the client key files")
    .action(
      (
        o: MasterOptions & {
          name: string;
          keys?: string;
          secrets?: string;
          operations: string;
          sourceIp: string;
          certBag: string;
          out: string;
        },
      ) =>
        withInstance(o, async (i) => {
          if (o.certBag !== "3des" && o.certBag !== "rc2-40")
            throw new CliError("kms: --cert-bag is 3des or rc2-40");
          if (o.keys === undefined && o.secrets === undefined)
            throw new CliError("kms: ap create needs --keys PATTERNS, --secrets PATTERNS or both");
          const created = await adminCreateAccessPoint(i, {
            name: o.name,
            keys: o.keys ?? "",
            secrets: o.secrets ?? "",
            operations: o.operations,
            sourceIps: o.sourceIp,
            outDir: o.out,
            certBagCipher: o.certBag,
          });
          out(`client key: ${created.clientKeyFile}`);
          out(`password:   ${created.passwordFile}`);
          out(created.record.id);
        }),
    );
}

/** Adds `kms ap list`. */
function registerAccessPointList(ap: Command): void {
  masterOptions(ap.command("list").description("list access points")).action((o: MasterOptions) =>
    withInstance(o, async (i) =>
      out(
        formatTable(
          ["ACCESS POINT", "NAME", "STATE", "KEYS", "OPERATIONS", "SOURCES", "SECRETS"],
          await accessPointTable(i),
        ),
      ),
    ),
  );
}

/** Adds `kms ap revoke`. */
function registerAccessPointRevoke(ap: Command): void {
  masterOptions(ap.command("revoke").description("revoke an access point for good"))
    .requiredOption("--ap <id|name>", "the access point")
    .action((o: MasterOptions & { ap: string }) =>
      withInstance(o, async (i) => out(`${await adminRevokeAccessPoint(i, o.ap)} revoked`)),
    );
}

/** Adds `kms ap`. */
function registerAccessPoints(kms: Command): void {
  const ap = kms.command("ap").description("manage application access points");
  registerAccessPointCreate(ap);
  registerAccessPointList(ap);
  registerAccessPointRevoke(ap);
}

function registerCaAndAudit(kms: Command): void {
  masterOptions(kms.command("ca").description("write the instance CA certificate (PrivateKmsCA.pem)"))
    .requiredOption("--out <file>", "where to write it")
    .action((o: MasterOptions & { out: string }) =>
      withInstance(o, async (i) => {
        try {
          copyFileSync(i.caPath, o.out);
        } catch {
          writeFileSync(o.out, await i.caCertPem());
        }
        out(o.out);
      }),
    );
  const audit = kms.command("audit").description("the audit log");
  masterOptions(
    audit.command("verify").description("check the audit hash chain; exit 1 on any tampering"),
  ).action((o: MasterOptions) =>
    withInstance(o, async (i) => {
      const verdict = await adminVerifyAudit(i);
      if (!verdict.ok) throw new CliError(`audit FAILED at entry ${verdict.seq}: ${verdict.reason}`);
      if (verdict.anchored === undefined) {
        // Say what an unanchored check cannot vouch for, on stderr so stdout stays one line.
        process.stderr.write(
          "audit: no --audit-anchor given: a rollback of the whole database to an older copy would not show\n",
        );
        out(`audit OK: ${verdict.count} entries`);
      } else out(`audit OK: ${verdict.count} entries (anchored at entry ${verdict.anchored})`);
    }),
  );
  masterOptions(audit.command("list").description("print audit entries"))
    .option("--last <n>", "only the last N", "50")
    .action((o: MasterOptions & { last: string }) =>
      withInstance(o, async (i) => {
        for (const e of await i.audit.entries(Number(o.last))) {
          out(
            [
              e.seq,
              e.time,
              e.actor,
              e.source,
              e.operation,
              e.keyId || "-",
              e.outcome,
              e.requestId || "-",
              e.detail,
            ].join(" "),
          );
        }
      }),
    );
}

/** Adds the `kms` command group. */
export function registerKmsCommands(program: Command): void {
  const kms = program.command("kms").description("a self-hosted KMS speaking the KMS instance protocol");
  registerServe(kms);
  registerInit(kms);
  registerKeys(kms);
  registerAliases(kms);
  registerAccessPoints(kms);
  registerSecrets(kms);
  registerCaAndAudit(kms);
}
