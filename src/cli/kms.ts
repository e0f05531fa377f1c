/** CLI command group: kms (not built yet). */
import type { Command } from "commander";

/** Adds the kms command(s) to the program. */
export function registerKmsCommands(_program: Command): void {}
