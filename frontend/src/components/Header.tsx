import { ConnectButton } from "@rainbow-me/rainbowkit";
import { useAccount, useChainId, useChains, useSwitchChain } from "wagmi";
import { useMarketplaceRelayer, useRelayerPick } from "../hooks/useRelayers.ts";
import { relayerLabel } from "../lib/discovery.ts";
import { shortHex } from "../lib/explorer.ts";
import { NAV, type Route } from "../lib/routes.ts";
import { LOCAL_DEV_CONNECTOR_ID, type LocalDevControls } from "../wallet/localDevWallet.ts";
import { Link } from "./Link.tsx";

/** Picks which demo account the local dev wallet signs with (shown only while it is connected). */
function LocalAccountPicker() {
  const { connector, address } = useAccount();
  if (connector?.id !== LOCAL_DEV_CONNECTOR_ID || address === undefined) return null;
  const controls = connector as unknown as Partial<LocalDevControls>;
  // Right after a page reload, until wagmi has reconnected, the connection holds the connector as
  // it was stored (its id and name only): the picker appears once the real connector is back.
  if (controls.accounts === undefined || controls.selectAccount === undefined) return null;
  const { accounts, selectAccount } = controls;
  return (
    <label className="account-picker">
      <span>Dev account</span>
      <select value={address} onChange={(event) => selectAccount(event.target.value as `0x${string}`)}>
        {accounts.map((account) => (
          <option key={account.address} value={account.address}>
            {account.role} — {shortHex(account.address)}
          </option>
        ))}
      </select>
    </label>
  );
}

/** Which network to read while no wallet is connected (a connected wallet decides otherwise). */
function NetworkSelect() {
  const { isConnected } = useAccount();
  const chainId = useChainId();
  const chains = useChains();
  const { switchChain } = useSwitchChain();
  if (isConnected) return null;
  return (
    <label className="network-select">
      <span className="visually-hidden">Network</span>
      <select value={chainId} onChange={(event) => switchChain({ chainId: Number(event.target.value) })}>
        {chains.map((chain) => (
          <option key={chain.id} value={chain.id}>
            {chain.name}
          </option>
        ))}
      </select>
    </label>
  );
}

/**
 * Which of the relayers found on-chain serves the marketplace views, remembered per network (shown
 * only when there is a choice). A session's page uses its provider's relayer whatever is picked.
 */
function RelayerSelect() {
  const { url, relayers } = useMarketplaceRelayer();
  const [, pick] = useRelayerPick();
  if (relayers.length < 2) return null;
  return (
    <label className="network-select">
      <span className="visually-hidden">Relayer</span>
      <select value={url} onChange={(event) => pick(event.target.value)} title="The relayer that serves the marketplace views">
        {relayers.map((relayer) => (
          <option key={relayer.url} value={relayer.url}>
            {relayerLabel(relayer)}
          </option>
        ))}
      </select>
    </label>
  );
}

/** The top bar: brand, navigation, network, relayer and wallet. */
export function Header({ route }: { route: Route }) {
  return (
    <header className="header">
      <div className="header-top">
        <Link to="/" className="brand">
          AgentMesh
        </Link>
        <div className="wallet">
          <NetworkSelect />
          <RelayerSelect />
          <LocalAccountPicker />
          <ConnectButton showBalance={false} accountStatus={{ smallScreen: "avatar", largeScreen: "full" }} chainStatus="icon" />
        </div>
      </div>
      <nav aria-label="Pages">
        <ul>
          {NAV.map((entry) => (
            <li key={entry.path}>
              <Link to={entry.path} aria-current={entry.pages.includes(route.page) ? "page" : undefined}>
                {entry.label}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
    </header>
  );
}
