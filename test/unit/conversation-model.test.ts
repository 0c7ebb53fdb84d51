import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { checkTurns, turnsFingerprint, type NewTurn } from "../../src/domain/conversation-model.js";

const turn = (over: Partial<NewTurn> = {}): NewTurn => ({ participantId: "user-1", role: "", content: "hello", toolCalls: [], metadata: { lang: "en" }, ...over });

describe("turnsFingerprint", () => {
  it("is the SHA-256 of the turns as sent, keys sorted, whatever checkTurns added", () => {
    const turns = [turn(), turn({ participantId: "agent", role: "assistant", content: "hi", toolCalls: [{ id: "c1", name: "search", arguments: { q: "tea", a: 1 } }] })];
    const before = turnsFingerprint(turns);
    checkTurns(turns);
    expect(turns[0].metadataJson).toBe('{"lang":"en"}');
    // Fingerprints are stored with request ids: their text must not change from one release to the next.
    const canonical =
      '[{"content":"hello","metadata":{"lang":"en"},"participantId":"user-1","role":"","toolCalls":[]},' +
      '{"content":"hi","metadata":{"lang":"en"},"participantId":"agent","role":"assistant","toolCalls":[{"arguments":{"a":1,"q":"tea"},"id":"c1","name":"search"}]}]';
    expect(turnsFingerprint(turns)).toBe(createHash("sha256").update(canonical).digest("hex"));
    expect(before).toBe(turnsFingerprint(turns));
  });
});
