/** The result of parsing what a user typed: the value, or a sentence saying what to fix. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

export const valid = <T>(value: T): Parsed<T> => ({ ok: true, value });
export const invalid = <T = never>(error: string): Parsed<T> => ({ ok: false, error });
