import { DatabaseSync } from "node:sqlite";
import { parentPort, workerData } from "node:worker_threads";

/**
 * The checkpointer's thread (see `startCheckpointer`): its own connection copies the write-ahead
 * log into the database file every `intervalMs`, and `fsync`s it, while the relayer's connection
 * goes on writing. A PASSIVE checkpoint never waits for readers or writers.
 */
const { file, intervalMs } = workerData as { file: string; intervalMs: number };
const db = new DatabaseSync(file);
db.exec("PRAGMA busy_timeout = 1000");
const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");

const timer = setInterval(() => {
  try {
    checkpoint.get();
  } catch (error) {
    // SQLITE_BUSY: another checkpoint holds the lock; the next tick catches up.
    if ((error as { errcode?: number }).errcode !== 5) throw error;
  }
}, intervalMs);

parentPort!.once("message", () => {
  clearInterval(timer);
  checkpoint.get();
  db.close();
  parentPort!.close(); // the thread exits
});
