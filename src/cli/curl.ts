/** CLI command group: curl (not built yet). */
import type { Command } from "commander";

/** Adds the curl command(s) to the program. */
export function registerCurlCommand(_program: Command): void {}
