import { explorerUrl, shortHex } from "../lib/explorer.ts";
import { useDeployment } from "../hooks/useAppConfig.ts";

/** A transaction hash or address, linked to the block explorer on Base (plain text on the local chain). */
export function ChainLink({ kind, value, label }: { kind: "tx" | "address"; value: string; label?: string }) {
  const { chainId } = useDeployment();
  const url = explorerUrl(chainId, kind, value);
  const text = label ?? shortHex(value);
  return url ? (
    <a className="mono" href={url} target="_blank" rel="noreferrer" title={value}>
      {text}
    </a>
  ) : (
    <span className="mono" title={value}>
      {text}
    </span>
  );
}
