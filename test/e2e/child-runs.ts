/** Running a command as a child process to its end, as the end-to-end tests of the command lines do. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";

export const ROOT = path.resolve(import.meta.dirname, "../..");
/** The `agentmesh` bin, as the README runs it from a clone. */
export const CLI = path.join(ROOT, "sdk/src/cli.ts");

/** A finished child: its exit code and everything it printed. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command` with exactly `env` in `cwd` (default the repository's root) to its end. */
export function runToEnd(command: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd = ROOT): Promise<Run> {
  const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** The one JSON object a successful `--json` run prints. */
export function json(run: Run): Record<string, any> {
  assert.equal(run.code, 0, `exit ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout);
}
