import { connectorsForWallets, type WalletList } from "@rainbow-me/rainbowkit";
import { coinbaseWallet, injectedWallet, metaMaskWallet, rainbowWallet, walletConnectWallet } from "@rainbow-me/rainbowkit/wallets";
import { defineChain, type Chain } from "viem";
import { base, baseSepolia, hardhat } from "viem/chains";
import { createConfig, http } from "wagmi";
import { buildRpcUrl, type AppConfig } from "./lib/config.ts";
import { localDevWallet } from "./wallet/localDevWallet.ts";

/** WalletConnect Cloud project id (build-time `VITE_WALLETCONNECT_PROJECT_ID`); QR-code wallets need it. */
const walletConnectProjectId: string | undefined = import.meta.env.VITE_WALLETCONNECT_PROJECT_ID;

/**
 * Each public chain's RPC URL, when one is set at build time (else viem's public endpoint): the
 * public endpoints are rate-limited, so a deployed dApp names its own.
 */
const publicRpcUrls = (): Record<number, string | undefined> => ({
  [base.id]: buildRpcUrl("VITE_BASE_RPC_URL", import.meta.env.VITE_BASE_RPC_URL),
  [baseSepolia.id]: buildRpcUrl("VITE_BASE_SEPOLIA_RPC_URL", import.meta.env.VITE_BASE_SEPOLIA_RPC_URL),
});

/**
 * The dApp's one wagmi configuration: Base and Base Sepolia with real wallets, and — when a local
 * stack is served — the local chain first, with the local dev account wallet.
 */
export function createWagmiConfig(app: AppConfig) {
  const localChain = app.local && defineChain({ ...hardhat, name: "Local chain", rpcUrls: { default: { http: [app.local.rpcUrl] } } });
  const chains: [Chain, ...Chain[]] = localChain ? [localChain, base, baseSepolia] : [base, baseSepolia];
  const wallets: WalletList = [
    ...(app.local && localChain ? [{ groupName: "Local chain", wallets: [localDevWallet(app.local.accounts, localChain)] }] : []),
    {
      groupName: "Wallets",
      wallets: walletConnectProjectId
        ? [injectedWallet, metaMaskWallet, coinbaseWallet, rainbowWallet, walletConnectWallet]
        : [injectedWallet, coinbaseWallet],
    },
  ];
  const rpcUrls = publicRpcUrls();
  return createConfig({
    chains,
    connectors: connectorsForWallets(wallets, { appName: "AgentMesh", projectId: walletConnectProjectId ?? "" }),
    transports: Object.fromEntries(chains.map((chain) => [chain.id, http(rpcUrls[chain.id])])),
  });
}

declare module "wagmi" {
  interface Register {
    config: ReturnType<typeof createWagmiConfig>;
  }
}
