/** CLI command group: key (not built yet). */
import type { Command } from "commander";

/** Adds the key command(s) to the program. */
export function registerKeyCommands(_program: Command): void {}
