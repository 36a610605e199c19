import { useState } from "react";
import { getAbiItem, type Hex } from "viem";
import { useAccount } from "wagmi";
import { ChainLink } from "../components/ChainLink.tsx";
import { Link } from "../components/Link.tsx";
import { EmptyState, ErrorState, Loading, RelayerMissing, WithDeployment } from "../components/States.tsx";
import { UsdcAmount } from "../components/UsdcAmount.tsx";
import { SESSION_PAGE, useSession } from "../hooks/useRelayer.ts";
import { useEventLogs } from "../hooks/useEventLogs.ts";
import { useProviderRelayer } from "../hooks/useRelayers.ts";
import { useSessionReadAuthorization } from "../hooks/useSessionRead.ts";
import type { ChainDeployment } from "../lib/config.ts";
import { shortHex } from "../lib/explorer.ts";
import { computeEscrowAbi, describeError } from "@agentmesh/sdk/browser";
import { RelayerRequestError } from "../lib/relayer.ts";
import type { SessionView } from "@agentmesh/sdk/protocol";
import { formatBps } from "../lib/splits.ts";
import { parseUsdcDecimal } from "../lib/usdc.ts";
import { ReceiptVerification } from "./session/ReceiptVerification.tsx";

function Receipts({ deployment, session, after, setAfter }: { deployment: ChainDeployment; session: SessionView; after: number; setAfter: (after: number) => void }) {
  const [selected, setSelected] = useState<string | undefined>();
  const receipt = session.receipts.find((candidate) => candidate.hash === selected);
  // The page holds the receipt before the first one shown, for verifying that one's chain link.
  const shown = session.receipts.filter((item) => item.sequence > after);
  if (shown.length === 0 && after === 0) return <EmptyState>No call yet: receipts appear here as the agent's calls are served.</EmptyState>;
  return (
    <>
      {(after > 0 || session.receiptsPage.nextAfter !== null) && (
        <nav className="actions" aria-label="Receipt pages">
          <button type="button" className="secondary" disabled={after === 0} onClick={() => setAfter(Math.max(0, after - SESSION_PAGE))}>
            Earlier calls
          </button>
          <span className="muted">
            Calls {after + 1}–{after + shown.length} of {session.state.requestCount}
          </span>
          <button type="button" className="secondary" disabled={session.receiptsPage.nextAfter === null} onClick={() => setAfter(after + SESSION_PAGE)}>
            Later calls
          </button>
        </nav>
      )}
      <div className="table-wrap">
        <table className="responsive" data-testid="receipts">
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Tokens in / out</th>
              <th scope="col">Cost</th>
              <th scope="col">Latency</th>
              <th scope="col">Receipt hash</th>
              <th scope="col">Settlement</th>
              <th scope="col">
                <span className="visually-hidden">Verify</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {shown.map((item) => (
              <tr key={item.hash} data-testid={`receipt-${item.sequence}`}>
                <td data-label="#">{item.sequence}</td>
                <td data-label="Tokens in / out">
                  {item.inputTokens} / {item.outputTokens}
                </td>
                <td data-label="Cost">
                  <UsdcAmount value={BigInt(item.cost)} />
                </td>
                <td data-label="Latency">{item.latencyMs} ms</td>
                <td data-label="Receipt hash" className="mono" title={item.hash}>
                  {shortHex(item.hash)}
                </td>
                <td data-label="Settlement">{item.settlementTxHash ? <ChainLink kind="tx" value={item.settlementTxHash} /> : <span className="muted">pending</span>}</td>
                <td>
                  <button type="button" className="secondary" onClick={() => setSelected(item.hash)} aria-label={`Verify receipt ${item.sequence}`}>
                    Verify
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {receipt && <ReceiptVerification key={receipt.hash + receipt.settlementTxHash} deployment={deployment} session={session} receipt={receipt} />}
    </>
  );
}

/**
 * The relayer shows a session only to its agent or its budget's creator: the connected wallet signs
 * a read request (no transaction), good for an hour in this tab.
 */
function SignToRead({ read }: { read: ReturnType<typeof useSessionReadAuthorization> }) {
  const { isConnected } = useAccount();
  return (
    <div className="state" role="status">
      <p>Receipts are private to the session's agent and its budget's creator: sign a read request with either wallet to see them (no transaction, nothing is spent).</p>
      {isConnected ? (
        <button type="button" onClick={() => void read.sign().catch(() => undefined)} disabled={read.signing}>
          Sign to view
        </button>
      ) : (
        <p className="muted">Connect a wallet first.</p>
      )}
      {read.error && <p className="muted">{describeError(read.error)}</p>}
    </div>
  );
}

const sessionOpened = getAbiItem({ abi: computeEscrowAbi, name: "SessionOpened" });

/**
 * The relayer serving the session's provider: where the deployment names no relayer, the provider
 * is read from the session's `SessionOpened` event and its relayer found on-chain. A session the
 * chain does not know is asked of the marketplace's relayer (which says it does not know it either).
 */
function useSessionRelayer(deployment: ChainDeployment, sessionId: string) {
  const opened = useEventLogs(
    deployment.relayerUrl === undefined ? { address: deployment.contracts.ComputeEscrow, event: sessionOpened, args: { sessionId: sessionId as Hex } } : undefined,
  );
  const providerId = opened.data?.[0]?.args.terms.providerId;
  const relayer = useProviderRelayer(providerId);
  return deployment.relayerUrl === undefined && opened.isPending ? { ...relayer, url: undefined, pending: true } : relayer;
}

function Session({ deployment, sessionId }: { deployment: ChainDeployment; sessionId: string }) {
  const read = useSessionReadAuthorization(sessionId);
  const [after, setAfter] = useState(0);
  const relayer = useSessionRelayer(deployment, sessionId);
  const session = useSession(relayer.url, sessionId, read.authorization, after);
  const refused = session.error instanceof RelayerRequestError && (session.error.status === 401 || session.error.status === 403);
  if (read.authorization === undefined) return <SignToRead read={read} />;
  if (relayer.url === undefined) return <RelayerMissing relayer={relayer} />;
  if (session.isPending) return <Loading what="the session" />;
  if (session.isError) return <ErrorState error={session.error} retry={() => (refused ? read.forget() : void session.refetch())} />;
  const data = session.data;
  return (
    <>
      <dl className="facts card">
        <dt>Status</dt>
        <dd>{data.status}</dd>
        <dt>Agent</dt>
        <dd>
          <ChainLink kind="address" value={data.agent} />
        </dd>
        <dt>Budget</dt>
        <dd>
          <Link to={`/budgets/${data.terms.budgetId}`}>#{String(data.terms.budgetId)}</Link>
        </dd>
        <dt>Provider · model</dt>
        <dd>
          <Link to={`/sessions?provider=${data.providerId}`}>#{data.providerId}</Link> · {data.model}
        </dd>
        <dt>Receipt signer</dt>
        <dd data-testid="session-receipt-signer">
          <ChainLink kind="address" value={data.terms.receiptSigner} />{" "}
          <span className="muted">(fixed at open: only this key co-signs the session's states)</span>
        </dd>
        <dt>Protocol fee</dt>
        <dd data-testid="session-fee">
          {formatBps(data.terms.feeBps)} <span className="muted">of each settlement (fixed at open)</span>
        </dd>
        <dt>Spent (live)</dt>
        <dd>
          <UsdcAmount value={parseUsdcDecimal(data.spent)} testId="session-spent" /> of <UsdcAmount value={BigInt(data.terms.maxSpend)} /> locked
        </dd>
        <dt>Calls</dt>
        <dd data-testid="session-calls">{data.state.requestCount}</dd>
        <dt>Signed · settled up to</dt>
        <dd>
          call {data.signedSequence} · call {data.settledSequence}
        </dd>
        <dt>Opened in</dt>
        <dd>
          <ChainLink kind="tx" value={data.openTxHash} />
        </dd>
        {data.closeTxHash && (
          <>
            <dt>Closed in</dt>
            <dd>
              <ChainLink kind="tx" value={data.closeTxHash} />
            </dd>
          </>
        )}
      </dl>
      <h2>Receipts</h2>
      <Receipts deployment={deployment} session={data} after={after} setAfter={setAfter} />
    </>
  );
}

/** One session with its receipts arriving live; any receipt can be verified in the browser. */
export default function SessionPage({ sessionId }: { sessionId: string }) {
  return (
    <section>
      <h1>
        Session <span className="mono">{shortHex(sessionId)}</span>
      </h1>
      <WithDeployment relayer>{(deployment) => <Session deployment={deployment} sessionId={sessionId} />}</WithDeployment>
    </section>
  );
}
