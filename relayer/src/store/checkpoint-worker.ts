import { DatabaseSync } from "node:sqlite";
import { parentPort, workerData } from "node:worker_threads";
import { nextCheckpointDelay, type CheckpointPacing } from "./database.ts";

/**
 * The checkpointer's thread (see `startCheckpointer`): its own connection copies the write-ahead
 * log into the database file, and `fsync`s it, while the relayer's connection goes on writing; the
 * log's growth since the last checkpoint sets when the next one runs. A PASSIVE checkpoint never
 * waits for readers or writers.
 */
const { file, pacing } = workerData as { file: string; pacing: CheckpointPacing };
const db = new DatabaseSync(file);
db.exec("PRAGMA busy_timeout = 1000");
const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
const restart = db.prepare("PRAGMA wal_checkpoint(RESTART)");

/** Frames in the log after the last checkpoint, and when it ran. */
let lastLog = 0;
let lastRun = performance.now();

function run(): void {
  const now = performance.now();
  let delay = pacing.minIntervalMs;
  try {
    let { log } = checkpoint.get() as { log: number };
    if (log > pacing.maxLogFrames) ({ log } = restart.get() as { log: number });
    // A log shorter than last time was started over: all of it is new.
    delay = nextCheckpointDelay(log >= lastLog ? log - lastLog : log, now - lastRun, pacing);
    lastLog = log;
    lastRun = now;
  } catch (error) {
    // SQLITE_BUSY: another checkpoint holds the lock; try again soon.
    if ((error as { errcode?: number }).errcode !== 5) throw error;
  }
  timer = setTimeout(run, delay);
}

let timer = setTimeout(run, pacing.minIntervalMs);

parentPort!.once("message", () => {
  clearTimeout(timer);
  checkpoint.get();
  db.close();
  parentPort!.close(); // the thread exits
});
