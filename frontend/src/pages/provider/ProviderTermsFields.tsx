import { Field, SelectField, UsdcField } from "../../components/Field.tsx";
import { FEATURES } from "../../lib/features.ts";
import { PROVIDER_TYPES, type FieldErrors, type ProviderTermsInput } from "../../lib/provider.ts";

/** The fields of a provider's terms, shared by registration and editing. */
export function ProviderTermsFields({
  input,
  errors,
  onChange,
}: {
  input: ProviderTermsInput;
  /** Only the errors to show (after a submit attempt). */
  errors: FieldErrors<ProviderTermsInput>;
  onChange: (input: ProviderTermsInput) => void;
}) {
  const set = (patch: Partial<ProviderTermsInput>) => onChange({ ...input, ...patch });
  return (
    <div className="form-grid">
      <Field label="Endpoint (OpenAI-compatible base URL)" value={input.endpoint} onChange={(event) => set({ endpoint: event.target.value })} error={errors.endpoint} placeholder="https://example.com/v1" />
      <SelectField label="Type" value={input.providerType} onChange={(event) => set({ providerType: event.target.value })}>
        {PROVIDER_TYPES.map((type, index) => (
          <option key={type} value={index}>
            {type}
          </option>
        ))}
      </SelectField>
      <Field label="Rate limit" suffix="requests / min" inputMode="numeric" value={input.rateLimit} onChange={(event) => set({ rateLimit: event.target.value })} error={errors.rateLimit} />
      <UsdcField label="Minimum charge per call" value={input.minCharge} onChange={(event) => set({ minCharge: event.target.value })} error={errors.minCharge} />
      <Field label="Receipt signer" hint="The key that co-signs session states (several providers may share one, such as their relayer's). A session keeps the signer it opened with." value={input.receiptSigner} onChange={(event) => set({ receiptSigner: event.target.value })} error={errors.receiptSigner} className="mono" />
      <Field label="Payout" hint="An account, or a split from the Splits page." value={input.payout} onChange={(event) => set({ payout: event.target.value })} error={errors.payout} className="mono" />
      <fieldset className="checks">
        <legend>Features</legend>
        {FEATURES.map((feature) => (
          <label key={feature.name}>
            <input
              type="checkbox"
              checked={input.features.includes(feature.name)}
              onChange={(event) => set({ features: event.target.checked ? [...input.features, feature.name] : input.features.filter((name) => name !== feature.name) })}
            />
            {feature.name}
          </label>
        ))}
      </fieldset>
    </div>
  );
}
