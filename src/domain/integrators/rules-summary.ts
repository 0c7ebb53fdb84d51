/**
 * The rules integrator's summary (CompactSession): extractive, deterministic, no model. From the turns
 * to archive it keeps the sentences that carry the most of the chunk's vocabulary, in their order, each
 * after its speaker's name, below a heading naming the turns it covers; the summary so far comes first,
 * cut from its start when the whole would pass MAX_RULES_SUMMARY_CHARS.
 *
 * Scoring: a sentence's words of 4 letters or more (lower-cased), each worth how often it occurs in the
 * chunk's sentences, divided by the square root of the sentence's word count (long sentences do not win
 * by length). Tool and system turns are left out, as in the rules' integration. At most one sentence in
 * five is kept (at least 3 per chunk), each cut to 300 characters; a sentence a speaker says again is
 * counted and kept once.
 */
import type { Turn } from "../conversation-model.js";
import type { SummaryInput } from "../integrator-contract.js";

/** Longest summary the rules make, in characters. */
export const MAX_RULES_SUMMARY_CHARS = 4000;
const MAX_SENTENCE_CHARS = 300;
const SILENT = new Set(["tool", "system"]);

interface Sentence {
  speaker: string;
  text: string;
  words: string[];
  order: number;
}

function sentencesOf(turns: Turn[], names: Map<string, string>, silent: Set<string>): Sentence[] {
  const out: Sentence[] = [];
  const seen = new Set<string>();
  for (const turn of turns) {
    if (silent.has(turn.participantId) || SILENT.has(turn.role)) continue;
    const speaker = names.get(turn.participantId) || turn.participantId;
    for (const raw of turn.content.split(/(?<=[.!?])\s+|\n+/)) {
      const text = raw.trim();
      const words = text.toLowerCase().match(/\p{L}{4,}/gu) ?? [];
      // Said again (by the same speaker): kept once.
      if (!words.length || seen.has(`${speaker}\u0000${text}`)) continue;
      seen.add(`${speaker}\u0000${text}`);
      out.push({ speaker, text: Array.from(text).slice(0, MAX_SENTENCE_CHARS).join(""), words, order: out.length });
    }
  }
  return out;
}

/** The rules' summary of `input` (undefined when its turns hold no sentence and there is no summary so far). */
export function rulesSummary(input: SummaryInput): string | undefined {
  const names = new Map(input.participants.map((p) => [p.participantId, p.displayName]));
  const silent = new Set(input.participants.filter((p) => SILENT.has(p.kind)).map((p) => p.participantId));
  const sentences = sentencesOf(input.turns, names, silent);
  const frequency = new Map<string, number>();
  for (const s of sentences) for (const w of s.words) frequency.set(w, (frequency.get(w) ?? 0) + 1);
  const score = (s: Sentence) => s.words.reduce((a, w) => a + (frequency.get(w) ?? 0), 0) / Math.sqrt(s.words.length);
  const keep = Math.max(3, Math.ceil(sentences.length / 5));
  const kept = [...sentences]
    .sort((a, b) => score(b) - score(a) || a.order - b.order)
    .slice(0, keep)
    .sort((a, b) => a.order - b.order);
  if (!kept.length && !input.previousSummary) return undefined;
  const first = input.turns[0]?.seq;
  const last = input.turns[input.turns.length - 1]?.seq;
  const lines = kept.length ? [`Turns ${first}–${last}:`, ...kept.map((s) => `- ${s.speaker}: ${s.text}`)].join("\n") : "";
  const whole = [input.previousSummary, lines].filter(Boolean).join("\n");
  if (whole.length <= MAX_RULES_SUMMARY_CHARS) return whole;
  // The newest turns matter most: the summary so far gives way from its start.
  return `…${Array.from(whole).slice(-(MAX_RULES_SUMMARY_CHARS - 1)).join("")}`;
}
