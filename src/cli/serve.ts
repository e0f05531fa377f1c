/** CLI command group: serve (not built yet). */
import type { Command } from "commander";

/** Adds the serve command(s) to the program. */
export function registerServeCommand(_program: Command): void {}
