/**
 * The `hsmkit` command. Each command group lives in its own file and registers itself; this
 * file loads only the group being run (the TLS stack, the CA, the KMS and their dependencies
 * are most of the start-up time), and lists the others by name for `--help`.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Help } from "commander";
import { CliError, describeError } from "./errors.ts";
import { tuneNodeForTls } from "./node_tuning.ts";

/** A command group: the top-level names it registers and how to load its registration. */
interface CommandGroup {
  /** Each top-level name, with the usage term and one-line summary `hsmkit --help` lists. */
  readonly names: Readonly<Record<string, { readonly term: string; readonly summary: string }>>;
  /** Loads the module and returns its register function. */
  readonly load: () => Promise<(program: Command) => void>;
}

const GROUPS: readonly CommandGroup[] = [
  {
    names: {
      curl: {
        term: "curl [options] <url>",
        summary: "HTTPS request with mutual TLS; the client key may stay in a PKCS#11 token or KMS",
      },
    },
    load: async () => (await import("./curl.ts")).registerCurlCommand,
  },
  {
    names: {
      serve: {
        term: "serve [options]",
        summary:
          "HTTPS server and reverse proxy (mutual TLS with --client-ca); the key stays in its token, KMS or file",
      },
    },
    load: async () => (await import("./serve.ts")).registerServeCommand,
  },
  {
    names: { key: { term: "key", summary: "generate key pairs and show public keys" } },
    load: async () => (await import("./key.ts")).registerKeyCommands,
  },
  {
    // ca.ts registers `cert` too (they share the CA key options).
    names: {
      ca: { term: "ca", summary: "run a private CA whose keys stay in a token, the KMS or a file" },
      cert: { term: "cert", summary: "issue, export, revoke, show and verify certificates" },
    },
    load: async () => (await import("./ca.ts")).registerCaCommands,
  },
  {
    names: { kms: { term: "kms", summary: "a self-hosted KMS speaking the KMS instance protocol" } },
    load: async () => (await import("./kms.ts")).registerKmsCommands,
  },
  {
    names: {
      sign: {
        term: "sign [options]",
        summary: "sign a file of any size; writes the raw signature (openssl dgst -verify compatible)",
      },
      verify: {
        term: "verify [options]",
        summary:
          "check a detached file signature; prints 'Verified OK' (exit 0) or 'Verification failure' (exit 1)",
      },
    },
    load: async () => (await import("./sign.ts")).registerSignCommands,
  },
];

/** The package version, read from package.json (two levels up from src/cli and dist/cli alike). */
function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  const version = (pkg as { version?: unknown }).version;
  return typeof version === "string" ? version : "unknown";
}

/** The command name the user asked for: the first non-option argument (or the one after `help`). */
function requestedCommand(args: readonly string[]): string | undefined {
  const words = args.filter((a) => !a.startsWith("-"));
  return words[0] === "help" ? words[1] : words[0];
}

/** Registers the requested group for real and every other command as a name for the help list. */
async function buildProgram(args: readonly string[]): Promise<Command> {
  const wanted = requestedCommand(args);
  const terms = new Map<string, string>();
  const program = new Command("hsmkit")
    .description("mutual TLS, a private CA, a KMS and file signing with keys that stay in hardware")
    .version(packageVersion())
    .exitOverride()
    .showHelpAfterError(false)
    .configureHelp({ subcommandTerm: (cmd) => terms.get(cmd.name()) ?? new Help().subcommandTerm(cmd) });
  for (const group of GROUPS) {
    if (wanted !== undefined && Object.hasOwn(group.names, wanted)) {
      // Every command that takes a key reference accepts kms:// ones.
      await import("../kms/register.ts");
      (await group.load())(program);
      continue;
    }
    for (const [name, { term, summary }] of Object.entries(group.names)) {
      terms.set(name, term);
      program.command(name).description(summary);
    }
  }
  return program;
}

tuneNodeForTls();
try {
  const program = await buildProgram(process.argv.slice(2));
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // commander already printed its message (usage errors, --help, --version).
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`hsmkit: ${describeError(err)}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : 1;
  }
}
