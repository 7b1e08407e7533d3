/** The op-table suites on the js reference backend (see op-suites.ts). */
import { opSuites } from "./op-suites.ts";

opSuites("js");
