import { formatTimestamp } from "./validation.ts";

/**
 * Why the ledger refuses to move an account's balance (`ISplitsLedger`'s policy): a freeze by the
 * compliance role, which ends by itself, or USDC's blacklist. Such an account still receives payments.
 */
export interface Restriction {
  /** When the freeze ends (unix seconds); undefined when the account is not frozen. */
  frozenUntil: bigint | undefined;
  /** Whether USDC blacklists the account. */
  blacklisted: boolean;
}

export interface AccountRestrictionParameters {
  /** `SplitsLedger.canMove(account)`: the chain's answer. */
  canMove: boolean;
  /** `SplitsLedger.frozenUntil(account)`. */
  frozenUntil: bigint;
  /** USDC's `isBlacklisted(account)`. */
  blacklisted: boolean;
  /** The time now, unix seconds. */
  nowSeconds: number;
}

/**
 * Why `account` cannot move its balance, or null when it can. Whether it may is the ledger's
 * `canMove`; the clock only tells a freeze that is still running apart from an expired one when USDC
 * blacklists the account as well (without the blacklist, only a running freeze can stop it).
 *
 * @example
 * accountRestriction({ canMove: false, frozenUntil: 1_893_456_000n, blacklisted: false, nowSeconds }); // { frozenUntil: 1893456000n, blacklisted: false }
 */
export function accountRestriction({ canMove, frozenUntil, blacklisted, nowSeconds }: AccountRestrictionParameters): Restriction | null {
  if (canMove) return null;
  const frozen = !blacklisted || frozenUntil > BigInt(nowSeconds);
  return { frozenUntil: frozen ? frozenUntil : undefined, blacklisted };
}

/** A restriction in one sentence: why, what is refused and for how long, and that payments still arrive. */
export function describeRestriction({ frozenUntil, blacklisted }: Restriction): string {
  const frozen = frozenUntil === undefined ? undefined : `frozen until ${formatTimestamp(frozenUntil)} by the compliance role`;
  const why = [frozen, blacklisted ? "blacklisted by USDC" : undefined].filter((part) => part !== undefined).join(" and ");
  const howLong = frozen === undefined ? "for as long as USDC blacklists it" : blacklisted ? "while either lasts" : "until then";
  return `${why[0].toUpperCase()}${why.slice(1)}: withdrawals and transfers of this balance are refused ${howLong}; payments to it still arrive.`;
}
