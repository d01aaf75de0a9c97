/**
 * Every `jackpot` command, imported statically so that `deno compile` and `deno bundle` see them all.
 *
 * @module
 */
import type { Command } from "../command.ts";
import { command as info } from "./info.ts";
import { command as simulate } from "./simulate.ts";
import { command as pretrain } from "./pretrain.ts";
import { command as sample } from "./sample.ts";
import { command as generate } from "./generate.ts";
import { command as rl } from "./rl.ts";
import { command as sweep } from "./sweep.ts";

/** The commands in the order `jackpot --help` lists them. */
export const commands: readonly Command[] = [simulate, pretrain, rl, sweep, sample, generate, info];
