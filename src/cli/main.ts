/**
 * The `hsmkit` command. Each command group lives in its own file and registers itself here.
 */
import { Command, CommanderError } from "commander";
// Registers the kms:// key backend, so every --key option accepts KMS keys.
import "../kms/handle.ts";
import { registerCaCommands } from "./ca.ts";
import { registerCurlCommand } from "./curl.ts";
import { CliError, describeError } from "./errors.ts";
import { registerKeyCommands } from "./key.ts";
import { registerKmsCommands } from "./kms.ts";
import { registerServeCommand } from "./serve.ts";
import { registerSignCommands } from "./sign.ts";

const program = new Command("hsmkit")
  .description("mutual TLS, a private CA, a KMS and file signing with keys that stay in hardware")
  .version("0.1.0")
  .exitOverride()
  .showHelpAfterError(false);

registerCurlCommand(program);
registerServeCommand(program);
registerKeyCommands(program);
registerCaCommands(program);
registerKmsCommands(program);
registerSignCommands(program);

try {
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
