import { useState, type ReactNode } from "react";
import type { Address } from "viem";
import { SplitBar } from "../../components/Charts.tsx";
import { Field, SelectField, UsdcField } from "../../components/Field.tsx";
import { UsdcAmount } from "../../components/UsdcAmount.tsx";
import { describeRecipient, MAX_COMPONENTS, paymentParts, type FixedAmountInput, type FlowInput, type FlowOfFunds, type RecipientInput, type RecipientKindName, type ShareInput } from "../../lib/flowOfFunds.ts";
import { SHARE_SCALE } from "../../lib/splits.ts";

const KIND_LABELS: Record<RecipientKindName, string> = { account: "Account", split: "Split", budget: "Budget", platform: "Platform treasury" };

/** The recipient of a row: what it is (account, split, budget) and its address or budget id. */
function RecipientFields({ label, value, onChange, remainder = false }: { label: string; value: RecipientInput; onChange: (value: RecipientInput) => void; remainder?: boolean }) {
  const kinds: RecipientKindName[] = remainder ? ["platform", "account", "split", "budget"] : ["account", "split", "budget"];
  return (
    <>
      <SelectField label={`${label}: kind`} value={value.kind} onChange={(event) => onChange({ ...value, kind: event.target.value as RecipientKindName })}>
        {kinds.map((kind) => (
          <option key={kind} value={kind}>
            {KIND_LABELS[kind]}
          </option>
        ))}
      </SelectField>
      {value.kind !== "platform" && (
        <Field
          label={value.kind === "budget" ? `${label}: budget id` : `${label}: ${value.kind === "split" ? "split" : "account"} address`}
          value={value.target}
          onChange={(event) => onChange({ ...value, target: event.target.value })}
          className={value.kind === "budget" ? undefined : "mono"}
          inputMode={value.kind === "budget" ? "numeric" : undefined}
          placeholder={value.kind === "budget" ? "1" : "0x…"}
        />
      )}
    </>
  );
}

/**
 * A list of recipient rows (at most {@link MAX_COMPONENTS}), each with its own value field, a Remove
 * button per row and an Add button: the fixed amounts and the shares of a flow.
 */
function RecipientRows<Row extends RecipientInput>({
  label,
  noun,
  rows,
  blank,
  onChange,
  valueField,
}: {
  /** Row label prefix: "Fixed" gives "Fixed 1: kind", "Fixed 1: amount"… */
  label: string;
  /** What one row is, for its buttons: "fixed amount" gives "Add fixed amount". */
  noun: string;
  rows: Row[];
  /** A new row. */
  blank: Row;
  onChange: (rows: Row[]) => void;
  /** The row's value field, labelled from `rowLabel`, calling `set` with the updated row. */
  valueField: (row: Row, rowLabel: string, set: (row: Row) => void) => ReactNode;
}) {
  const set = (index: number, row: Row) => onChange(rows.map((item, at) => (at === index ? row : item)));
  return (
    <>
      {rows.map((row, index) => (
        <div className="inline-form" key={index}>
          <RecipientFields label={`${label} ${index + 1}`} value={row} onChange={(recipient) => set(index, { ...row, ...recipient })} />
          {valueField(row, `${label} ${index + 1}`, (updated) => set(index, updated))}
          <button type="button" className="secondary" onClick={() => onChange(rows.filter((_, at) => at !== index))} aria-label={`Remove ${noun} ${index + 1}`}>
            Remove
          </button>
        </div>
      ))}
      <button type="button" className="secondary" disabled={rows.length >= MAX_COMPONENTS} onClick={() => onChange([...rows, blank])}>
        Add {noun}
      </button>
    </>
  );
}

/** Edits an agent's flow of funds: fixed amounts, shares, referral rewards and the remainder. */
export function FlowEditor({ value, onChange }: { value: FlowInput; onChange: (value: FlowInput) => void }) {
  return (
    <fieldset className="flow-editor">
      <legend>Flow of funds (per call)</legend>
      <h4>1. Fixed amounts, paid first, in order</h4>
      <RecipientRows<FixedAmountInput>
        label="Fixed"
        noun="fixed amount"
        rows={value.fixedAmounts}
        blank={{ kind: "account", target: "", amount: "" }}
        onChange={(fixedAmounts) => onChange({ ...value, fixedAmounts })}
        valueField={(row, rowLabel, set) => <UsdcField label={`${rowLabel}: amount`} value={row.amount} onChange={(event) => set({ ...row, amount: event.target.value })} />}
      />
      <h4>2. Referral rewards, as a share of each payment</h4>
      <div className="inline-form">
        <Field label="Payer's referrer" suffix="%" inputMode="decimal" value={value.payerReferralPercent} onChange={(event) => onChange({ ...value, payerReferralPercent: event.target.value })} placeholder="0" />
        <Field label="Owner's referrer" suffix="%" inputMode="decimal" value={value.payeeReferralPercent} onChange={(event) => onChange({ ...value, payeeReferralPercent: event.target.value })} placeholder="0" />
      </div>
      <p className="hint">A referral reward whose referrer is not set goes to the remainder.</p>
      <h4>3. Shares of what is then left</h4>
      <RecipientRows<ShareInput>
        label="Share"
        noun="share"
        rows={value.shares}
        blank={{ kind: "account", target: "", percent: "" }}
        onChange={(shares) => onChange({ ...value, shares })}
        valueField={(row, rowLabel, set) => (
          <Field label={`${rowLabel}: percent`} suffix="%" inputMode="decimal" value={row.percent} onChange={(event) => set({ ...row, percent: event.target.value })} />
        )}
      />
      <h4>4. The remainder gets the rest</h4>
      <div className="inline-form">
        <RecipientFields label="Remainder" value={value.remainder} onChange={(remainder) => onChange({ ...value, remainder })} remainder />
      </div>
    </fieldset>
  );
}

/**
 * Who receives what of a sample payment of one call's price, to the unit: a bar and a table, with
 * switches to see where the referral rewards go when the payer or owner has no referrer.
 */
export function FlowPreview({ flow, price }: { flow: FlowOfFunds; price: bigint }) {
  const [referrers, setReferrers] = useState({ payer: true, payee: true });
  const parts = paymentParts(flow, price, price, referrers);
  const names: Record<string, string> = {};
  const slices = parts.map((part, index) => {
    const key = `${index}:${part.label}` as Address;
    names[key] = part.recipient ? `${part.label} — ${shortRecipient(describeRecipient(part.recipient))}` : part.label;
    return { account: key, share: Number((part.amount * BigInt(SHARE_SCALE)) / price), remainder: part.label === "Remainder" };
  });
  return (
    <section className="flow-preview" aria-label="Preview of a payment">
      <h4>
        A payment of <UsdcAmount value={price} />
      </h4>
      <SplitBar slices={slices} names={names} />
      <div className="checks">
        <label>
          <input type="checkbox" checked={referrers.payer} onChange={(event) => setReferrers({ ...referrers, payer: event.target.checked })} />
          the payer has a referrer
        </label>
        <label>
          <input type="checkbox" checked={referrers.payee} onChange={(event) => setReferrers({ ...referrers, payee: event.target.checked })} />
          the owner has a referrer
        </label>
      </div>
      <div className="table-wrap">
        <table className="responsive" data-testid="flow-preview">
          <thead>
            <tr>
              <th scope="col">Part</th>
              <th scope="col">Recipient</th>
              <th scope="col">Receives</th>
            </tr>
          </thead>
          <tbody>
            {parts.map((part, index) => (
              <tr key={index}>
                <td data-label="Part">{part.label}</td>
                <td data-label="Recipient" className="mono">
                  {part.recipient ? describeRecipient(part.recipient) : "set when the payment is made"}
                </td>
                <td data-label="Receives">
                  <UsdcAmount value={part.amount} /> <span className="muted">({part.amount.toLocaleString("en-US")} units)</span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function shortRecipient(text: string): string {
  return text.replace(/0x[0-9a-fA-F]{40}/, (address) => `${address.slice(0, 6)}…${address.slice(-4)}`);
}
