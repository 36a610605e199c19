import { Field, UsdcField } from "../../components/Field.tsx";
import type { FieldErrors, ModelInput } from "../../lib/provider.ts";

/** The fields of one model: name, prices per 1K tokens, context length. */
export function ModelFields({ input, errors, onChange, legend }: { input: ModelInput; errors: FieldErrors<ModelInput>; onChange: (input: ModelInput) => void; legend: string }) {
  const set = (patch: Partial<ModelInput>) => onChange({ ...input, ...patch });
  return (
    <fieldset className="form-grid model-fields">
      <legend>{legend}</legend>
      <Field label="Model name" value={input.name} onChange={(event) => set({ name: event.target.value })} error={errors.name} placeholder="llama-3.1-8b" />
      <UsdcField label="Input price per 1K tokens" value={input.inputPrice} onChange={(event) => set({ inputPrice: event.target.value })} error={errors.inputPrice} />
      <UsdcField label="Output price per 1K tokens" value={input.outputPrice} onChange={(event) => set({ outputPrice: event.target.value })} error={errors.outputPrice} />
      <Field label="Context length" suffix="tokens" inputMode="numeric" value={input.context} onChange={(event) => set({ context: event.target.value })} error={errors.context} />
    </fieldset>
  );
}
