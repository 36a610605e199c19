/**
 * A metered chat against the local stack (`npm start` first):
 *
 *   node sdk/examples/chat.ts ["your prompt"]
 *
 * Opens a session for the demo agent on the seeded budget, asks through the official `openai`
 * client (each receipt verified and its voucher signed by the SDK), streams a second answer, then
 * closes the session cooperatively so the escrow pays the provider and refunds the rest.
 */
import OpenAI from "openai";
import { AgentSession, formatUsdc, loadLocalStack } from "../src/index.ts";

const stack = await loadLocalStack(process.env.AGENTMESH_LOCAL_FILE ?? ".agentmesh/local.json");
if (stack.relayerUrl === undefined) throw new Error("the stack file names no relayer: is `npm start` running?");

const session = await AgentSession.open({
  relayerUrl: stack.relayerUrl,
  privateKey: stack.accounts.agent.privateKey,
  chainId: stack.chainId,
  escrow: stack.contracts.ComputeEscrow,
  budgetId: BigInt(stack.budgetId),
  providerId: stack.providers[0].id,
  model: "agentmesh-small",
  maxSpend: 1_000_000n, // 1 USDC locked for this session
});
console.log(`session ${session.sessionId} open`);

const openai = new OpenAI(session.openAIOptions());
const prompt = process.argv[2] ?? "Tell me about metered inference.";
const answer = await openai.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: prompt }], max_tokens: 60 });
console.log(`\n${answer.choices[0].message.content}\n`);

const stream = await openai.chat.completions.create({
  model: "agentmesh-small",
  messages: [{ role: "user", content: "And now streamed." }],
  max_tokens: 40,
  stream: true,
});
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? "");

const state = await session.state();
console.log(`\n\n${state.requestCount} calls, ${state.inputTokens} input + ${state.outputTokens} output tokens: ${formatUsdc(state.cumulativeCost)} USDC`);
const closed = await session.close();
console.log(`closed in ${closed.closeTxHash}: provider paid ${closed.settled} USDC, the rest returned to the budget`);
