/** CLI command group: ca (not built yet). */
import type { Command } from "commander";

/** Adds the ca command(s) to the program. */
export function registerCaCommands(_program: Command): void {}
