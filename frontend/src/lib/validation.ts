import { getAddress, isAddress, zeroAddress, type Address } from "viem";
import { invalid, valid, type Parsed } from "./parse.ts";

/** Longest endpoint the registry accepts (its MAX_ENDPOINT_LENGTH). */
export const MAX_ENDPOINT_LENGTH = 512;
/** Longest model name the registry accepts (its MAX_MODEL_NAME_LENGTH). */
export const MAX_MODEL_NAME_LENGTH = 128;
export const UINT32_MAX = 2 ** 32 - 1;

/** A non-zero address, checksummed. */
export function parseAddress(text: string): Parsed<Address> {
  const trimmed = text.trim();
  if (trimmed === "") return invalid("Enter an address (0x followed by 40 hex digits).");
  if (!isAddress(trimmed, { strict: false })) return invalid("This is not an address: expected 0x followed by 40 hex digits.");
  if (trimmed.toLowerCase() === zeroAddress) return invalid("The zero address cannot be used.");
  return valid(getAddress(trimmed));
}

/** Addresses separated by commas, spaces or new lines; empty text is an empty list. */
export function parseAddressList(text: string): Parsed<Address[]> {
  const parts = text.split(/[\s,]+/).filter((part) => part !== "");
  const addresses: Address[] = [];
  for (const [index, part] of parts.entries()) {
    const parsed = parseAddress(part);
    if (!parsed.ok) return invalid(`Address ${index + 1}: ${parsed.error}`);
    if (addresses.includes(parsed.value)) return invalid(`Address ${index + 1} is listed twice.`);
    addresses.push(parsed.value);
  }
  return valid(addresses);
}

/** A whole number in [min, max] (e.g. a rate limit or a context length). */
export function parseInteger(text: string, min: number, max = UINT32_MAX): Parsed<number> {
  const trimmed = text.trim().replace(/,/g, "");
  if (!/^\d+$/.test(trimmed)) return invalid("Enter a whole number.");
  const value = Number(trimmed);
  if (value < min) return invalid(`Enter at least ${min.toLocaleString("en-US")}.`);
  if (value > max) return invalid(`Enter at most ${max.toLocaleString("en-US")}.`);
  return valid(value);
}

/** A provider's OpenAI-compatible base URL: http(s), at most {@link MAX_ENDPOINT_LENGTH} characters. */
export function parseEndpoint(text: string): Parsed<string> {
  const trimmed = text.trim();
  if (trimmed.length > MAX_ENDPOINT_LENGTH) return invalid(`Use at most ${MAX_ENDPOINT_LENGTH} characters.`);
  try {
    const url = new URL(trimmed);
    if (url.protocol !== "https:" && url.protocol !== "http:") return invalid("The endpoint must be an http(s) URL.");
  } catch {
    return invalid("Enter the endpoint's base URL, such as https://example.com/v1.");
  }
  return valid(trimmed);
}

/** A model name as clients request it: 1 to {@link MAX_MODEL_NAME_LENGTH} characters. */
export function parseModelName(text: string): Parsed<string> {
  const trimmed = text.trim();
  if (trimmed === "") return invalid("Enter the model's name, as clients request it.");
  if (trimmed.length > MAX_MODEL_NAME_LENGTH) return invalid(`Use at most ${MAX_MODEL_NAME_LENGTH} characters.`);
  return valid(trimmed);
}

/**
 * A `datetime-local` input's value as unix seconds, which must be after `nowSeconds`.
 *
 * @example
 * parseExpiry("2030-01-01T00:00", Date.now() / 1000);
 */
export function parseExpiry(text: string, nowSeconds: number): Parsed<number> {
  const millis = Date.parse(text);
  if (text.trim() === "" || Number.isNaN(millis)) return invalid("Pick a date and time.");
  const seconds = Math.floor(millis / 1000);
  if (seconds <= nowSeconds) return invalid("Pick a time in the future.");
  if (seconds > UINT32_MAX) return invalid("Pick a date before 2106.");
  return valid(seconds);
}

/** Unix seconds as a `datetime-local` input value in the browser's time zone. */
export function toDateTimeLocal(seconds: number): string {
  const date = new Date(seconds * 1000);
  const pad = (value: number) => String(value).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** Unix seconds as a readable UTC date ("2030-01-01 00:00 UTC"). */
export function formatTimestamp(seconds: number | bigint): string {
  return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}
