import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { encodeChat } from "gpt-tokenizer/encoding/o200k_base";
import {
  HIGH_DETAIL_IMAGE_TOKENS,
  LOW_DETAIL_IMAGE_TOKENS,
  TextTokenCounter,
  countChatPromptTokens,
  countCompletionTokens,
  countPromptTokens,
  countTextTokens,
  splitIntoTokenPieces,
  type ChatMessage,
} from "./tokens.ts";

const MESSAGES: ChatMessage[] = [
  { role: "system", content: "You answer briefly." },
  { role: "user", content: "What does AgentMesh settle in USDC?" },
];

describe("tokens", () => {
  test("countTextTokens counts o200k_base tokens, special-token markers as plain text", () => {
    assert.equal(countTextTokens("Hello, world!"), 4);
    assert.equal(countTextTokens(""), 0);
    assert.equal(countTextTokens("<|endoftext|>"), 7);
  });

  test("countChatPromptTokens equals gpt-tokenizer's GPT-4o chat encoding for plain messages", () => {
    const chats: ChatMessage[][] = [
      [...MESSAGES],
      [{ role: "user", content: "" }],
      [
        { role: "developer", content: "Be exact." },
        { role: "user", name: "alice", content: "Quote 3 prices, then stop." },
        { role: "assistant", content: "1, 2, 3." },
      ],
    ];
    for (const chat of chats) {
      const plain = chat.map(({ role, name, content }) => ({ role, name, content: String(content) }));
      assert.equal(countChatPromptTokens(chat), encodeChat(plain, "gpt-4o").length);
    }
    assert.equal(countChatPromptTokens([]), 3);
  });

  test("a long conversation counts the same when its messages' counts are remembered", () => {
    const long = (seed: number) => Array.from({ length: 120 }, (_, index) => `word${(index * seed) % 97} costs ${index} units`).join(" ");
    const chat: ChatMessage[] = [
      { role: "system", content: long(3) },
      { role: "user", content: long(5) },
      { role: "assistant", content: long(7) },
    ];
    const expected = encodeChat(chat.map(({ role, content }) => ({ role, content: String(content) })), "gpt-4o").length;
    assert.equal(countChatPromptTokens(chat), expected);
    assert.equal(countChatPromptTokens(chat), expected, "counted again from what was remembered");
    const next = [...chat, { role: "user", content: long(11) }];
    assert.equal(countChatPromptTokens(next), encodeChat(next.map(({ role, content }) => ({ role, content: String(content) })), "gpt-4o").length);
  });

  test("TextTokenCounter keeps long texts' counts up to its size, the least recently used leaving first", () => {
    const counter = new TextTokenCounter(10, 100);
    const [a, b, c] = ["a", "b", "c"].map((letter) => `${letter} `.repeat(20)); // 40 code units each
    assert.equal(counter.count("short"), countTextTokens("short"));
    assert.equal(counter.remembers("short"), false, "short texts are not kept");
    for (const text of [a, b]) assert.equal(counter.count(text), countTextTokens(text));
    assert.equal(counter.size, 80);
    assert.equal(counter.count(a), countTextTokens(a)); // now used more recently than b
    assert.equal(counter.count(c), countTextTokens(c));
    assert.deepEqual([a, b, c].map((text) => counter.remembers(text)), [true, false, true], "b left to make room");
    assert.equal(counter.size, 80);
    const huge = "x".repeat(101);
    assert.equal(counter.count(huge), countTextTokens(huge));
    assert.equal(counter.remembers(huge), false, "a text larger than the whole store is not kept");
    assert.equal(counter.size, 80);
  });

  test("issue 12 item 8: image parts count at their detail's bound, never as nothing", () => {
    const image = (detail?: string) => ({ type: "image_url", image_url: { url: "https://example.com/cat.png", ...(detail && { detail }) } });
    const plain = countChatPromptTokens([{ role: "user", content: "look" }]);
    assert.equal(countChatPromptTokens([{ role: "user", content: [{ type: "text", text: "look" }, image("low")] }]), plain + LOW_DETAIL_IMAGE_TOKENS);
    assert.equal(countChatPromptTokens([{ role: "user", content: [{ type: "text", text: "look" }, image()] }]), plain + 1_445);
    assert.equal(countChatPromptTokens([{ role: "user", content: [{ type: "text", text: "look" }, image("high"), image("auto")] }]), plain + 2 * 1_445);
  });

  test("issue 12 item 8: tool definitions and a response format's schema count as their JSON text (134 KB of tools is not 9 tokens)", () => {
    const parameters = { type: "object", properties: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`field_${i}`, { type: "string", description: "x ".repeat(60) }])) };
    const tools = Array.from({ length: 30 }, (_, i) => ({ type: "function", function: { name: `tool_${i}`, description: "Does a thing.", parameters } }));
    assert.ok(JSON.stringify(tools).length > 134_000);
    const messagesOnly = countPromptTokens({ messages: MESSAGES });
    assert.equal(messagesOnly, countChatPromptTokens(MESSAGES));
    const withTools = countPromptTokens({ messages: MESSAGES, tools });
    assert.equal(withTools, messagesOnly + 3 + countTextTokens(JSON.stringify(tools)));
    assert.ok(withTools - messagesOnly > 30_000, `tools counted as ${withTools - messagesOnly} tokens`);
    assert.equal(countPromptTokens({ messages: MESSAGES, tools: [] }), messagesOnly);
    const schema = { name: "answer", schema: { type: "object", properties: { value: { type: "number" } } } };
    assert.equal(
      countPromptTokens({ messages: MESSAGES, response_format: { type: "json_schema", json_schema: schema } }),
      messagesOnly + 3 + countTextTokens(JSON.stringify(schema)),
    );
    assert.equal(countPromptTokens({ messages: MESSAGES, response_format: { type: "json_object" } }), messagesOnly);
  });

  test("text parts and tool calls are counted as their documented text rendering", () => {
    const call = { id: "call_1", type: "function", function: { name: "get_time", arguments: '{"zone":"UTC"}' } };
    const withParts: ChatMessage = {
      role: "user",
      content: [
        { type: "text", text: "first" },
        { type: "image_url" },
        { type: "text", text: "second" },
      ],
    };
    const withToolCall: ChatMessage = { role: "assistant", content: null, tool_calls: [call] };
    const textAndCall = { content: "Checking.", tool_calls: [call] };

    assert.equal(
      countChatPromptTokens([withParts]),
      countChatPromptTokens([{ role: "user", content: "first\nsecond" }]) + HIGH_DETAIL_IMAGE_TOKENS,
    );
    assert.equal(
      countChatPromptTokens([withToolCall]),
      countChatPromptTokens([{ role: "assistant", content: 'get_time {"zone":"UTC"}' }]),
    );
    assert.equal(countCompletionTokens({ tool_calls: [call] }), countTextTokens('get_time {"zone":"UTC"}'));
    assert.equal(countCompletionTokens(textAndCall), countTextTokens('Checking.\nget_time {"zone":"UTC"}'));
    assert.equal(countCompletionTokens({ content: "Hello, world!" }), 4);
  });

  test("splitIntoTokenPieces is lossless, one piece per token for ASCII", () => {
    const ascii = "Settle 42 vouchers, then stop.";
    assert.deepEqual(splitIntoTokenPieces(ascii), ["Set", "tle", " ", "42", " vouchers", ",", " then", " stop", "."]);
    assert.equal(splitIntoTokenPieces(ascii).length, countTextTokens(ascii));
    const unicode = "naïve 日本語 🎉 <|im_end|>";
    assert.equal(splitIntoTokenPieces(unicode).join(""), unicode);
  });
});

