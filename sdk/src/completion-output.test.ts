import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CompletionShapeError, MAX_TOOL_CALLS, StreamedOutput, outputOfCompletion } from "./completion-output.ts";

const chunk = (delta: Record<string, unknown>) => ({ object: "chat.completion.chunk", choices: [{ index: 0, delta }] });

describe("completion output", () => {
  it("a non-streamed completion's first choice: text and tool calls; non-text content counts as none", () => {
    const body = {
      choices: [
        { message: { content: "hi", tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }] } },
        { message: { content: "second choice is not the receipt's" } },
      ],
    };
    assert.deepEqual(outputOfCompletion(body), { content: "hi", toolCalls: [{ id: "c1", name: "f", arguments: "{}" }] });
    assert.deepEqual(outputOfCompletion({ choices: [{ message: { content: [{ type: "text" }] } }] }), { content: null, toolCalls: [] });
    assert.deepEqual(outputOfCompletion({}), { content: null, toolCalls: [] });
  });

  it("a stream's deltas concatenate, tool calls by index", () => {
    const stream = new StreamedOutput();
    assert.deepEqual(stream.output, { content: null, toolCalls: [] });
    stream.add(chunk({ role: "assistant", content: "" }));
    stream.add(chunk({ content: "Hel" }));
    stream.add(chunk({ tool_calls: [{ index: 0, id: "a", function: { name: "get_", arguments: '{"x"' } }] }));
    stream.add(chunk({ content: "lo", tool_calls: [{ index: 0, function: { name: "time", arguments: ":1}" } }, { index: 1, id: "b", function: { name: "g" } }] }));
    stream.add({ choices: [], usage: { prompt_tokens: 1, completion_tokens: 2 } });
    assert.deepEqual(stream.output, {
      content: "Hello",
      toolCalls: [
        { id: "a", name: "get_time", arguments: '{"x":1}' },
        { id: "b", name: "g", arguments: "" },
      ],
    });
  });

  it("refuses tool call indexes that skip ahead, are not integers or exceed the bound (nothing is allocated for them)", () => {
    for (const index of [1, -1, 0.5, "0", MAX_TOOL_CALLS, 2 ** 32 - 1, Number.MAX_SAFE_INTEGER]) {
      const stream = new StreamedOutput();
      assert.throws(() => stream.add(chunk({ tool_calls: [{ index, id: "x" }] })), CompletionShapeError, `index ${index}`);
      assert.deepEqual(stream.output.toolCalls, [], `index ${index} left nothing behind`);
    }
    const full = new StreamedOutput();
    for (let index = 0; index < MAX_TOOL_CALLS; index++) full.add(chunk({ tool_calls: [{ index, id: `c${index}` }] }));
    assert.equal(full.output.toolCalls.length, MAX_TOOL_CALLS);
    assert.throws(() => full.add(chunk({ tool_calls: [{ index: MAX_TOOL_CALLS }] })), CompletionShapeError);
    assert.throws(() => outputOfCompletion({ choices: [{ message: { tool_calls: new Array(MAX_TOOL_CALLS + 1).fill({}) } }] }), CompletionShapeError);
  });
});
