import { useId, type InputHTMLAttributes, type ReactNode, type SelectHTMLAttributes } from "react";

interface FieldProps {
  label: string;
  hint?: ReactNode;
  /** Shown, and announced, when set. */
  error?: string;
  /** Text after the input, such as a unit. */
  suffix?: string;
}

function FieldFrame({ id, label, hint, error, suffix, children }: FieldProps & { id: string; children: ReactNode }) {
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <div className="field-input">
        {children}
        {suffix && <span className="suffix">{suffix}</span>}
      </div>
      {hint && <small id={`${id}-hint`} className="hint">{hint}</small>}
      {error && (
        <small id={`${id}-error`} className="field-error" role="alert">
          {error}
        </small>
      )}
    </div>
  );
}

const describedBy = (id: string, { hint, error }: FieldProps) =>
  [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(" ") || undefined;

/** A labelled text input with a hint and a validation message. */
export function Field({ label, hint, error, suffix, ...input }: FieldProps & InputHTMLAttributes<HTMLInputElement>) {
  const id = useId();
  return (
    <FieldFrame id={id} label={label} hint={hint} error={error} suffix={suffix}>
      <input id={id} aria-invalid={error ? true : undefined} aria-describedby={describedBy(id, { label, hint, error })} {...input} />
    </FieldFrame>
  );
}

/** An amount of USDC, typed with up to six decimals. */
export function UsdcField(props: FieldProps & InputHTMLAttributes<HTMLInputElement>) {
  return <Field inputMode="decimal" autoComplete="off" placeholder="0.00" suffix="USDC" {...props} />;
}

/** A labelled select. */
export function SelectField({ label, hint, error, children, ...select }: FieldProps & SelectHTMLAttributes<HTMLSelectElement>) {
  const id = useId();
  return (
    <FieldFrame id={id} label={label} hint={hint} error={error}>
      <select id={id} aria-describedby={describedBy(id, { label, hint, error })} {...select}>
        {children}
      </select>
    </FieldFrame>
  );
}
