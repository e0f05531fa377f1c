// Worker threads do not inherit `--import tsx`; register the TypeScript loader, then start.
import { register } from "tsx/esm/api";

register();
await import("./worker.ts");
