import { Field, UsdcField } from "../../components/Field.tsx";
import type { AgentTermsCheck, FlowInput } from "../../lib/flowOfFunds.ts";
import { FlowEditor, FlowPreview } from "./FlowEditor.tsx";

/** A listing's descriptive fields, as typed. */
export interface AgentDetailsInput {
  name: string;
  endpoint: string;
  metadataURI: string;
}

/** Name, endpoint and metadata URI of a listing (the publish form's and the owner's). */
export function AgentDetailsFields({ value, onChange }: { value: AgentDetailsInput; onChange: (value: AgentDetailsInput) => void }) {
  return (
    <>
      <Field label="Name" value={value.name} onChange={(event) => onChange({ ...value, name: event.target.value })} placeholder="AutoDev" />
      <Field
        label="Endpoint"
        hint="Where the relayer forwards paid calls (JSON in, JSON out)."
        value={value.endpoint}
        onChange={(event) => onChange({ ...value, endpoint: event.target.value })}
        placeholder="https://agent.example/run"
      />
      <Field label="Metadata URI" hint="Optional: a description document." value={value.metadataURI} onChange={(event) => onChange({ ...value, metadataURI: event.target.value })} />
    </>
  );
}

interface AgentTermsFieldsProps {
  price: string;
  onPriceChange: (price: string) => void;
  flow: FlowInput;
  onFlowChange: (flow: FlowInput) => void;
  /** `parseAgentTerms(price, flow)`. */
  check: AgentTermsCheck;
  /** Whether the form was submitted (the price's error shows from then on). */
  attempted: boolean;
}

/**
 * Price per call and flow of funds: the flow editor, then a preview of one call's payment to the
 * unit, or the flow's error as soon as there is one.
 */
export function AgentTermsFields({ price, onPriceChange, flow, onFlowChange, check, attempted }: AgentTermsFieldsProps) {
  return (
    <>
      <div className="form-grid">
        <UsdcField label="Price per call" value={price} onChange={(event) => onPriceChange(event.target.value)} error={attempted && !check.price.ok ? check.price.error : undefined} />
      </div>
      <FlowEditor value={flow} onChange={onFlowChange} />
      {check.price.ok && check.flow?.ok ? (
        <FlowPreview flow={check.flow.value} price={check.price.value} />
      ) : (
        check.flow &&
        !check.flow.ok && (
          <p className="field-error" role="alert">
            {check.flow.error}
          </p>
        )
      )}
    </>
  );
}
