/** CLI command group: sign (not built yet). */
import type { Command } from "commander";

/** Adds the sign command(s) to the program. */
export function registerSignCommands(_program: Command): void {}
