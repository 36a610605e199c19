/**
 * Every AgentMesh contract's custom errors as sentences a user can act on; the dApp and the
 * `agentmesh` command line both print these.
 */
import {
  BaseError,
  ContractFunctionRevertedError,
  InsufficientFundsError,
  UserRejectedRequestError,
  decodeErrorResult,
  type Abi,
  type Hex,
} from "viem";
import { agentMarketplaceAbi, computeEscrowAbi, mockUSDCAbi, providerRegistryAbi, splitsLedgerAbi } from "./abi/contracts.ts";
import { formatUsdc } from "./pricing.ts";

/**
 * Every custom error of every AgentMesh contract and of USDC, so that a revert bubbling up from a
 * nested call (USDC inside the escrow, the registry inside the escrow) decodes too.
 */
export const CONTRACT_ERRORS_ABI: Abi = [
  ...new Map(
    [computeEscrowAbi, providerRegistryAbi, splitsLedgerAbi, agentMarketplaceAbi, mockUSDCAbi]
      .flatMap((abi) => (abi as Abi).filter((item) => item.type === "error"))
      .map((item) => [item.type === "error" ? item.name : "", item]),
  ).values(),
];

type Args = readonly unknown[];

/** `IAgentMarketplace.AgentStatus` names, by value. */
const AGENT_STATUS_NAMES = ["not listed", "active", "paused", "retired"] as const;

/** "1,234.500000 USDC": six decimals, thousands separated. */
const usdc = (value: unknown) => {
  const [whole, fraction] = formatUsdc(BigInt(value as bigint)).split(".");
  return `${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",")}.${fraction} USDC`;
};
/** "2030-01-01 00:00 UTC". */
const date = (value: unknown) => `${new Date(Number(value) * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC`;
/** "0x1234…abcd": enough of a hash or address to recognise it. */
const short = (value: unknown) => {
  const text = String(value);
  return text.length > 14 ? `${text.slice(0, 6)}…${text.slice(-4)}` : text;
};
const percent = (bps: unknown) => `${Number(bps) / 100}%`;

/** One sentence per custom error, built from its arguments. */
const SENTENCES: Record<string, (args: Args) => string> = {
  // ComputeEscrow
  EscrowUnknownBudget: ([id]) => `Budget #${id} does not exist.`,
  EscrowNotBudgetCreator: ([id, caller]) => `Only the creator of budget #${id} can do this, and ${short(caller)} is not.`,
  EscrowInvalidAmount: ([amount]) => `The amount ${usdc(amount)} is zero or out of range.`,
  EscrowInsufficientBudget: ([id, available, needed]) => `Budget #${id} has ${usdc(available)} unallocated, but ${usdc(needed)} is needed.`,
  EscrowSessionLimitExceeded: ([id, limit, requested]) =>
    `A session may lock at most ${usdc(limit)} from budget #${id}, but ${usdc(requested)} was requested.`,
  EscrowInvalidExpiry: ([expiry]) => `The expiry (${date(expiry)}) must be in the future.`,
  EscrowBudgetExpired: ([id, expiry]) => `Budget #${id} expired on ${date(expiry)}.`,
  EscrowBudgetNotExpired: ([id, expiry]) => `Budget #${id} has not expired yet: its funds can be returned after ${date(expiry)}.`,
  EscrowInvalidDeadline: ([deadline, expiry]) =>
    `The session deadline (${date(deadline)}) is in the past or after the budget's expiry (${date(expiry)}).`,
  EscrowAgentNotAllowed: ([id, agent]) => `Agent ${short(agent)} is not whitelisted on budget #${id}.`,
  EscrowZeroAddress: () => "An address is missing: the zero address cannot be used.",
  EscrowSessionExists: () => "A session with exactly these terms is already open.",
  EscrowPriceMismatch: ([providerId, modelId]) =>
    `The prices of model #${modelId} of provider #${providerId} have changed; open the session again at the new prices.`,
  EscrowSessionTooSmall: ([maxSpend, minCharge]) =>
    `A session must lock at least one minimum charge (${usdc(minCharge)}), but ${usdc(maxSpend)} was asked.`,
  EscrowInvalidSignature: ([, signer]) => `The signature is not from ${short(signer)}.`,
  EscrowSessionNotOpen: ([id]) => `Session ${short(id)} is not open: it is unknown or already closed.`,
  EscrowClaimWindowOver: ([id, claimEnd]) => `The claim window of session ${short(id)} ended on ${date(claimEnd)}.`,
  EscrowClaimWindowOpen: ([id, claimEnd]) => `Session ${short(id)} can be finalized only after its claim window ends on ${date(claimEnd)}.`,
  EscrowVoucherStale: ([, settled, sequence]) => `Voucher ${sequence} is stale: voucher ${settled} of this session is already settled.`,
  EscrowVoucherNotMonotonic: ([id]) => `The voucher lowers a cumulative total of session ${short(id)}.`,
  EscrowVoucherExceedsLock: ([, maxSpend, cost]) => `The voucher charges ${usdc(cost)}, above the session's lock of ${usdc(maxSpend)}.`,
  EscrowVoucherBelowMinCharge: ([, minimum, cost]) => `The voucher charges ${usdc(cost)}, below its calls' minimum charges of ${usdc(minimum)}.`,
  EscrowVoucherNotFinal: () => "A cooperative close needs a voucher marked final.",
  EscrowNotAuthorized: ([id, caller]) => `${short(caller)} may not close session ${short(id)} this way.`,
  EscrowInvalidBatchSize: ([size, max]) => `A batch holds 1 to ${max} vouchers; this one holds ${size}.`,
  EscrowFeeTooHigh: ([fee, max]) => `A fee of ${percent(fee)} is above the maximum of ${percent(max)}.`,
  EscrowInvalidSlashProof: () => "The double-sign proof is not two different states of one session and sequence, both signed by that session's receipt signer.",
  EscrowReceiptSignerMismatch: ([providerId, current, inTerms]) =>
    `Provider #${providerId}'s receipt signer is now ${short(current)}, not ${short(inTerms)}; open the session again with the current signer.`,
  EscrowFeeMismatch: ([current, inTerms]) => `The protocol fee is now ${percent(current)}, not ${percent(inTerms)}; open the session again with the current fee.`,
  EscrowCreatorRestricted: ([id, creator]) =>
    `The creator of budget #${id} (${short(creator)}) may not move funds now (frozen, or blacklisted by USDC), so refunds and new sessions are refused.`,
  EscrowUnknownSession: ([id]) => `Session ${short(id)} was never opened on this escrow.`,
  EscrowChallengeWindowTooShort: ([window, min]) => `A challenge window of ${window} seconds is shorter than the minimum of ${min} seconds.`,
  EscrowWiringMismatch: ([expected, actual]) => `The contracts are wired wrongly: ${short(expected)} was expected, but ${short(actual)} was given.`,
  // ProviderRegistry
  RegistryUnknownProvider: ([id]) => `Provider #${id} does not exist.`,
  RegistryUnknownModel: ([providerId, modelId]) => `Provider #${providerId} has no model #${modelId}.`,
  RegistryNotProviderOwner: ([id, caller]) => `Only the owner of provider #${id} can do this, and ${short(caller)} is not.`,
  RegistryStakeTooLow: ([stake, minStake]) => `A stake of ${usdc(stake)} is below the minimum of ${usdc(minStake)}.`,
  RegistryInvalidAmount: ([amount]) => `The amount ${usdc(amount)} is zero or too large.`,
  RegistryInsufficientStake: ([id, stake, needed]) => `Provider #${id} has ${usdc(stake)} staked, so ${usdc(needed)} cannot be unstaked.`,
  RegistryUnstakeNotReady: ([id, availableAt]) =>
    BigInt(availableAt as bigint) === 0n
      ? `Provider #${id} has no pending unstake.`
      : `The pending unstake of provider #${id} can be withdrawn from ${date(availableAt)}.`,
  RegistryInvalidString: ([length, max]) => `A name or endpoint is empty or too long (${length} characters; at most ${max}).`,
  RegistryInvalidLimit: () => "The rate limit and every model's context length must be above zero.",
  RegistryZeroAddress: () => "An address is missing: the zero address cannot be used.",
  RegistryEscrowLocked: () => "The registry's escrow is already bound: the deployer binds it once.",
  RegistryNotEscrow: ([caller]) => `Only the escrow may do this, and ${short(caller)} is not it.`,
  RegistryOwnerRestricted: ([id, owner]) =>
    `The owner of provider #${id} (${short(owner)}) may not move funds now (frozen, or blacklisted by USDC), so its unstake stays in the registry.`,
  RegistryProviderInactive: ([id]) => `Provider #${id} is not active.`,
  RegistryProviderSlashed: ([id]) => `Provider #${id} was slashed and cannot be reactivated.`,
  RegistryModelRetired: ([providerId, modelId]) => `Model #${modelId} of provider #${providerId} is retired.`,
  // SplitsLedger
  LedgerZeroAmount: () => "The amount is zero or the list is empty.",
  LedgerLengthMismatch: ([payees, amounts]) => `${payees} payees were given but ${amounts} amounts.`,
  LedgerInvalidReceiver: () => "Funds cannot be sent to the zero address.",
  LedgerInsufficientBalance: ([account, balance, needed]) =>
    `${short(account)} holds ${usdc(balance)} in the ledger, so ${usdc(needed)} cannot be moved.`,
  LedgerInsufficientAllowance: ([account, spender, allowance, needed]) =>
    `${short(account)} lets ${short(spender)} spend ${usdc(allowance)} of its ledger balance, but ${usdc(needed)} is needed.`,
  LedgerAccountFrozen: ([account, until]) => `${short(account)} is frozen until ${date(until)}: it cannot move its ledger balance until then (it still receives payments).`,
  LedgerAccountBlacklisted: ([account]) => `USDC blacklists ${short(account)}, so the ledger refuses to move its balance (it still receives payments).`,
  LedgerSignatureExpired: ([deadline]) => `The signature expired on ${date(deadline)}.`,
  LedgerInvalidSignature: ([account]) => `The withdrawal or transfer is not signed by ${short(account)}.`,
  LedgerSplitRecipientCount: ([count, max]) => `A split has 1 to ${max} recipients; this one has ${count}.`,
  LedgerSplitRecipientsUnsorted: ([index]) => `Recipient ${Number(index) + 1} of the split repeats an address.`,
  LedgerSplitInvalidShares: ([total, scale]) =>
    `Every recipient needs a share above 0%, and the shares may add up to at most 100% (they add up to ${(Number(total) / Number(scale)) * 100}%).`,
  LedgerSplitTooDeep: ([, max]) => `Splits may be nested at most ${max} levels deep.`,
  LedgerSplitTooManyLeaves: ([leaves, max]) => `The split would reach ${leaves} accounts through nested splits; at most ${max} are allowed.`,
  LedgerNotASplit: ([split]) => `${short(split)} is not a split.`,
  LedgerAmountOverflow: ([amount]) => `The amount ${usdc(amount)} is too large for the ledger.`,
  LedgerCustodiansLocked: () => "The ledger's custodians are already set: the deployer sets them once.",
  LedgerCustodianNotFreezable: ([custodian]) => `${short(custodian)} holds other people's funds (a custodian) and cannot be frozen.`,
  LedgerInvalidFreeze: ([until, latest]) => `A freeze must end after now and by ${date(latest)}, not on ${date(until)}.`,
  LedgerInvalidReason: () => "A freeze or unfreeze needs a reason code above 0.",
  LedgerNotFrozen: ([account]) => `${short(account)} is not frozen.`,
  // AgentMarketplace
  MarketplaceUnknownAgent: ([id]) => `Agent #${id} does not exist.`,
  MarketplaceNotAgentOwner: ([id, caller]) => `Only the owner of agent #${id} can do this, and ${short(caller)} is not.`,
  MarketplaceInvalidStatus: ([id, status]) => `Agent #${id} is ${AGENT_STATUS_NAMES[Number(status)] ?? "in another state"}, which does not allow this.`,
  MarketplaceZeroAddress: () => "An address is missing: the zero address cannot be used.",
  MarketplaceInvalidPrice: ([price]) => `A price per call of ${usdc(price)} is zero or too large.`,
  MarketplaceInvalidName: ([length, max]) => `The name must be 1 to ${max} bytes long; it is ${length}.`,
  MarketplaceInvalidEndpoint: ([length, max]) => `The endpoint must be 1 to ${max} bytes long; it is ${length}.`,
  MarketplaceInvalidMetadataURI: ([length, max]) => `The metadata URI may be at most ${max} bytes long; it is ${length}.`,
  MarketplaceFlowTooManyComponents: ([count, max]) => `A flow lists at most ${max} fixed amounts and ${max} shares; this one has ${count}.`,
  MarketplaceFlowInvalidRecipient: ([index]) => `Recipient ${Number(index) + 1} of the flow (fixed amounts, then shares, then the remainder) is malformed.`,
  MarketplaceFlowZeroComponent: ([index]) => `Part ${Number(index) + 1} of the flow (fixed amounts, then shares) is zero.`,
  MarketplaceFlowInvalidShares: ([total, scale]) => `The shares, or the two referral shares, add up to ${(Number(total) / Number(scale)) * 100}%, above 100%.`,
  MarketplaceFlowExceedsPrice: ([committed, price]) =>
    `The fixed amounts and referral rewards of one call come to ${usdc(committed)}, above the price of ${usdc(price)}.`,
  MarketplaceFlowUnknownSplit: ([split]) => `${short(split)} is not a split of the ledger.`,
  MarketplaceFlowUnknownBudget: ([id]) => `Budget #${id} does not exist.`,
  MarketplaceFlowMismatch: ([id]) => `The flow of funds given is not agent #${id}'s current flow.`,
  MarketplacePaymentBelowPrice: ([id, price, amount]) => `A payment of ${usdc(amount)} to agent #${id} is below its price of ${usdc(price)}.`,
  MarketplacePendingFull: ([id, max]) => `Agent #${id} has ${max} undistributed payments: distribute them first.`,
  MarketplaceChainMismatch: ([id]) => `The pending payments given do not match agent #${id}'s payment chain.`,
  MarketplaceNothingToDistribute: ([id]) => `Agent #${id} has nothing to distribute: no payment is pending and its payment address is empty.`,
  MarketplaceSelfReferral: ([account]) => `${short(account)} cannot be its own referrer.`,
  MarketplaceCustodianReferrer: ([referrer]) => `${short(referrer)} is an AgentMesh contract holding others' funds and cannot be a referrer.`,
  MarketplaceReferrerAlreadySet: ([account, referrer]) => `${short(account)} already has a referrer (${short(referrer)}); it cannot change.`,
  MarketplaceInvalidSignature: ([account]) => `The referral is not signed by ${short(account)}.`,
  MarketplaceTokenMismatch: () => "The ledger or escrow holds another token than the marketplace.",
  // USDC (FiatToken-compatible MockUSDC) and OpenZeppelin
  ERC20InsufficientBalance: ([sender, balance, needed]) => `${short(sender)} holds ${usdc(balance)}, but ${usdc(needed)} is needed.`,
  ERC20InsufficientAllowance: ([, allowance, needed]) =>
    `The contract may spend only ${usdc(allowance)} of your USDC, but ${usdc(needed)} is needed: approve it first.`,
  ERC20InvalidApprover: ([approver]) => `${short(approver)} cannot approve spending.`,
  ERC20InvalidReceiver: ([receiver]) => `USDC cannot be sent to ${short(receiver)}.`,
  ERC20InvalidSender: ([sender]) => `USDC cannot be sent from ${short(sender)}.`,
  ERC20InvalidSpender: ([spender]) => `${short(spender)} cannot be approved as a spender.`,
  PermitExpired: ([deadline]) => `The permit expired on ${date(deadline)}; sign a new one.`,
  PermitInvalidSignature: ([owner]) => `The permit is not signed by ${short(owner)}.`,
  InvalidAccountNonce: ([account]) => `The signature of ${short(account)} uses a nonce that is already spent; sign again.`,
  AuthorizationAlreadyUsed: () => "This transfer authorization was already used.",
  AuthorizationCallerMustBePayee: ([, payee]) => `Only ${short(payee)} may submit this authorization.`,
  AuthorizationInvalidSignature: ([authorizer]) => `The authorization is not signed by ${short(authorizer)}.`,
  AuthorizationNotValidNow: ([after, before]) => `The authorization is valid only between ${date(after)} and ${date(before)}.`,
  MintOnlyOnLocalChain: ([chainId]) => `Test USDC can be minted only on the local chain, not on chain ${chainId}.`,
  TokenPaused: () => "USDC is paused by its issuer: no USDC moves until it resumes (balances inside the ledger still do).",
  AccountBlacklisted: ([account]) => `USDC blacklists ${short(account)}: it cannot send, receive or approve USDC.`,
  NotTokenAdmin: ([caller]) => `Only the USDC admin may do this, and ${short(caller)} is not.`,
  AccessControlUnauthorizedAccount: ([account]) => `${short(account)} lacks the role this action needs.`,
  AccessControlBadConfirmation: () => "Only the account itself can renounce its role.",
  AccessControlEnforcedDefaultAdminRules: () => "The admin role changes hands only by the two-step transfer (begin, wait out the delay, accept).",
  AccessControlEnforcedDefaultAdminDelay: ([schedule]) => `The admin transfer can be accepted only from ${date(schedule)}.`,
  AccessControlInvalidDefaultAdmin: ([admin]) => `${short(admin)} cannot take the admin role: it is the zero address or not the pending admin.`,
  ReentrancyGuardReentrantCall: () => "The contract refused a re-entrant call.",
  SafeERC20FailedOperation: () => "The USDC transfer failed.",
  TokenDepositMismatch: ([expected, received]) => `The contract expected to receive ${usdc(expected)} but received ${usdc(received)}.`,
  FailedDeployment: () => "The agent's payment address could not be deployed.",
  InsufficientBalance: ([balance, needed]) => `The contract holds ${balance} wei of ETH, but ${needed} wei is needed.`,
  InvalidShortString: () => "A contract name is malformed.",
  StringTooLong: () => "A contract name is too long.",
  SafeCastOverflowedUintDowncast: ([bits, value]) => `The value ${value} does not fit in ${bits} bits.`,
};

/** The sentence for custom error `name` with `args`, or undefined for an error no contract defines. */
export function describeContractError(name: string, args: Args = []): string | undefined {
  return SENTENCES[name]?.(args);
}

/** Names of the errors that have a sentence (the tests check every contract error has one). */
export const DESCRIBED_ERRORS: readonly string[] = Object.keys(SENTENCES);

function describeRevert(reverted: ContractFunctionRevertedError): string {
  if (reverted.data?.errorName) {
    return describeContractError(reverted.data.errorName, reverted.data.args ?? []) ?? `The contract refused: ${reverted.data.errorName}.`;
  }
  if (reverted.raw) {
    try {
      const decoded = decodeErrorResult({ abi: CONTRACT_ERRORS_ABI, data: reverted.raw as Hex });
      const sentence = describeContractError(decoded.errorName, decoded.args ?? []);
      if (sentence) return sentence;
    } catch {
      // not one of ours
    }
  }
  return reverted.reason ? `The contract refused: ${reverted.reason}.` : "The contract refused the transaction.";
}

/**
 * Any error from a wallet, an RPC node or a contract, as one sentence a wallet user can act on.
 *
 * @example
 * try { await write(); } catch (error) { setMessage(describeError(error)); }
 */
export function describeError(error: unknown): string {
  if (error instanceof BaseError) {
    const reverted = error.walk((cause) => cause instanceof ContractFunctionRevertedError);
    if (reverted instanceof ContractFunctionRevertedError) return describeRevert(reverted);
    if (error.walk((cause) => cause instanceof UserRejectedRequestError)) return "You declined the request in your wallet.";
    if (error.walk((cause) => cause instanceof InsufficientFundsError)) return "This account has too little ETH to pay for gas.";
    return error.shortMessage;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}
