/** The vmap op-table suites (test/vmap-suites.ts) on the js reference backend. */
import { vmapSuites } from "./vmap-suites.ts";

vmapSuites("js");
