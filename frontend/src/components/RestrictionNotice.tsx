import { describeRestriction, type Restriction } from "../lib/restriction.ts";

/** Why a balance cannot move (frozen, or blacklisted by USDC), with what that means for its holder. */
export function RestrictionNotice({ restriction, children }: { restriction: Restriction; children?: string }) {
  return (
    <p className="notice" role="note" data-testid="account-restriction">
      {describeRestriction(restriction)}
      {children && ` ${children}`}
    </p>
  );
}
