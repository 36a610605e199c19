import type { Wallet } from "@rainbow-me/rainbowkit";
import { createWalletClient, getAddress, http, numberToHex, type Address, type Chain, type EIP1193RequestFn } from "viem";
import { createConnector } from "wagmi";
import type { DevAccount } from "../lib/config.ts";

/**
 * A wallet over the local stack's demo accounts (their keys are public, dev-only): it signs
 * transactions and typed data in the page and sends raw transactions to the local chain, so the
 * whole dApp works in a browser without an extension. Offered only when a local stack is served.
 */

const SELECTED_KEY = "agentmesh.localDev.account";
const CONNECTED_KEY = "agentmesh.localDev.connected";
const ICON =
  "data:image/svg+xml;utf8," +
  encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 28 28"><rect width="28" height="28" rx="6" fill="#1f6f5c"/><path d="M8 9h12M8 14h8M8 19h12" stroke="#fff" stroke-width="2.4" stroke-linecap="round"/></svg>');

/** What the account picker calls on the connected local dev connector. */
export interface LocalDevControls {
  [key: string]: unknown;
  accounts: readonly DevAccount[];
  selectAccount(address: Address): void;
}

export const LOCAL_DEV_CONNECTOR_ID = "localDev";

function localDevConnector(accounts: readonly DevAccount[], chain: Chain) {
  const initial = accounts.find((account) => account.address === localStorage.getItem(SELECTED_KEY)) ?? accounts[0];
  let selected = initial;
  const transport = http(chain.rpcUrls.default.http[0]);
  const rpc = transport({ chain }).request as EIP1193RequestFn;

  return createConnector<{ request: EIP1193RequestFn }, LocalDevControls>((config) => ({
    id: LOCAL_DEV_CONNECTOR_ID,
    name: "Local dev account",
    type: "localDev",
    icon: ICON,
    accounts,
    /** Connects on the local chain whatever chain was asked for: the dev accounts live there only. */
    async connect() {
      localStorage.setItem(CONNECTED_KEY, "1");
      // wagmi types `accounts` by its `withCapabilities` flag, which this connector never honours.
      return { accounts: [selected.address], chainId: chain.id } as never;
    },
    async disconnect() {
      localStorage.removeItem(CONNECTED_KEY);
    },
    async getAccounts() {
      return [selected.address];
    },
    async getChainId() {
      return chain.id;
    },
    async isAuthorized() {
      return localStorage.getItem(CONNECTED_KEY) === "1";
    },
    async getProvider() {
      const request = (async ({ method, params }) => {
        if (method === "eth_accounts" || method === "eth_requestAccounts") return [selected.address];
        if (method === "eth_chainId") return numberToHex(chain.id);
        return rpc({ method, params } as never);
      }) as EIP1193RequestFn;
      return { request };
    },
    /** A wallet client whose account signs in the page: transactions go out raw. */
    async getClient() {
      const { privateKeyToAccount } = await import("viem/accounts");
      return createWalletClient({ account: privateKeyToAccount(selected.privateKey), chain, transport });
    },
    selectAccount(address: Address) {
      const next = accounts.find((account) => account.address === getAddress(address));
      if (next === undefined || next === selected) return;
      selected = next;
      localStorage.setItem(SELECTED_KEY, next.address);
      config.emitter.emit("change", { accounts: [next.address] });
    },
    onAccountsChanged(changed) {
      config.emitter.emit("change", { accounts: changed.map((address) => getAddress(address)) });
    },
    onChainChanged(chainId) {
      config.emitter.emit("change", { chainId: Number(chainId) });
    },
    onDisconnect() {
      config.emitter.emit("disconnect");
    },
  }));
}

/** The RainbowKit wallet entry of the local dev connector. */
export function localDevWallet(accounts: readonly DevAccount[], chain: Chain): () => Wallet {
  return () => ({
    id: LOCAL_DEV_CONNECTOR_ID,
    name: "Local dev account",
    iconUrl: ICON,
    iconBackground: "#1f6f5c",
    installed: true,
    createConnector: (walletDetails) => createConnector((config) => ({ ...localDevConnector(accounts, chain)(config), ...walletDetails })),
  });
}
