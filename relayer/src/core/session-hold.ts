import { randomUUID } from "node:crypto";
import type { Hex } from "viem";
import { log } from "../log.ts";
import type { Repository, SessionRecord } from "../store/repository.ts";

/**
 * How long a hold on a session lasts unless renewed: when the instance serving a call dies, another
 * may serve the session's next call after this.
 */
export const SESSION_HOLD_MS = 30_000;
/** How often a running call renews its hold (a third of its life: two renewals may fail in a row). */
const RENEW_EVERY_MS = SESSION_HOLD_MS / 3;

/**
 * One call's (or one close's) hold on its session, across every instance sharing the database (see
 * {@link Repository.holdSession}): while it lasts, no other call of the session runs anywhere, and
 * only its token may record the session's next state.
 */
export class SessionHold {
  /** The session as of when the hold was taken: the state the call builds on. */
  readonly session: SessionRecord;
  readonly token: string;
  private readonly repo: Repository;
  private readonly timer: NodeJS.Timeout;
  /** Whether the hold ended (released, or with the call's record). */
  private over = false;
  /** Other claims that live as long as the hold (an Idempotency-Key's), renewed with it. */
  private readonly companions: ((until: number) => Promise<void>)[] = [];

  private constructor(repo: Repository, session: SessionRecord, token: string) {
    this.repo = repo;
    this.session = session;
    this.token = token;
    this.timer = setInterval(() => void this.renew(), RENEW_EVERY_MS);
    this.timer.unref();
  }

  /** Holds session `id`; undefined when another call holds it (on this instance or another). */
  static async take(repo: Repository, id: Hex): Promise<SessionHold | undefined> {
    const token = randomUUID();
    const session = await repo.holdSession(id, token, Date.now() + SESSION_HOLD_MS);
    return session && new SessionHold(repo, session, token);
  }

  /** Renews `renew` with the hold, until the hold ends. */
  renewWith(renew: (until: number) => Promise<void>): void {
    this.companions.push(renew);
  }

  /** The hold ended with the call's record (which released it in the same write). */
  ended(): void {
    this.over = true;
    clearInterval(this.timer);
  }

  /** Lets go of the session, unless the hold already ended. */
  async release(): Promise<void> {
    if (this.over) return;
    this.ended();
    await this.repo.releaseSessionHold(this.session.id, this.token);
  }

  private async renew(): Promise<void> {
    const until = Date.now() + SESSION_HOLD_MS;
    try {
      if (!(await this.repo.renewSessionHold(this.session.id, this.token, until))) {
        // Lapsed and taken by another call (this instance could not reach the database in time): the
        // record of this call will be refused, and its receipt never given out.
        log.warn({ sessionId: this.session.id }, "lost the hold on a session while serving it");
        clearInterval(this.timer);
        return;
      }
      for (const renew of this.companions) await renew(until);
    } catch (error) {
      log.warn({ sessionId: this.session.id, err: error }, "renewing a session hold failed (retried)");
    }
  }
}
