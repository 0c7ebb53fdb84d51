/**
 * The built-in default integrator ("rules"): deterministic, no network, no model, so a namespace gets useful
 * memories without running anything, and the same turns always give the same result.
 *
 * What it models: what the integrating participant P learned from the OTHERS. It reads only the turns
 * spoken by other participants; turns of "tool" and "system" speakers (kind looked up in
 * input.participants) and turns whose role is "tool" or "system" are skipped, since their text is not a
 * person talking about themselves. A speaker missing from input.participants is read, with subjectUser "".
 *
 * What it catches: explicit first-person statements, case-insensitively, sentence by sentence (a sentence
 * ends at a newline, or at . ! ? followed by whitespace or the end of the text). Rule ids go into
 * metadata.rule:
 * - remember:   "remember that X", "please remember X", "don't forget (that) X"  -> "X" (the rest of the
 *               sentence), only when it reads as a request: no subject or auxiliary (I, you, we, can, ...)
 *               before it in its clause, so "I remember that day" is not an instruction.
 * - name:       "my name is X", "my name's X", "call me X", "I'm / I am called X" -> "name: X", X = 1 to 3
 *               words, stopping at punctuation, "and" and other function words ("call me later" gives
 *               nothing); after a capitalized first word, only capitalized words follow.
 * - preference: "I (really) prefer / like / love X" -> "prefers: X"; "my favorite / favourite <thing> is X"
 *               -> "favorite <thing>: X"; "I don't / do not (really) like X", "I hate X", "I dislike X"
 *               -> "dislikes: X".
 * - fact:       "I am / I'm a(n) X" -> "is a(n) X", "I work at / for / as X" -> "works at / for / as X",
 *               "I live in X" -> "lives in X" (the speaker's own article and preposition are kept).
 * Except for remember, X ends at the end of its clause: , ; : ( ) a dash, or a conjunction ("but",
 * "because", "when", "and I", ...). X is cut to 200 characters and loses trailing punctuation.
 *
 * What it refuses: questions (a sentence ending in "?", or starting "do I", "am I", "can you", ...);
 * statements with a negation or a hedge earlier in their clause ("I don't think I like tea", "if I like
 * it", "maybe I live in Rome"); captures starting with "not"/"no"/"never" ("my name is not Bob"); a bare
 * pronoun ("I like it"); "I'm a bit/little/lot ...". "I don't prefer tea" matches no rule at all.
 *
 * What it does NOT catch (by design, see the test file for a list): other verbs and forms ("I enjoy",
 * "I'd like", "I'm vegetarian", "I'm from", "I'm allergic to"), the past ("I lived in Berlin"), third or
 * plural persons ("we like", "my wife's name is"), facts stated without "I" ("tea is my favorite drink"),
 * sarcasm, and corrections of earlier statements (both are kept). It cannot tell reported speech from
 * the speaker's own ("they said I like tea" gives "prefers: tea"), and abbreviations end sentences early
 * ("my name is Dr. Jones" gives "name: Dr"). Every regex is linear in its input; captures look at most
 * WINDOW characters ahead, so even an adversarial 64 KiB turn takes milliseconds, not seconds.
 */
import type { ParticipantKind } from "../conversation-model.js";
import { rulesSummary } from "./rules-summary.js";
import {
  MAX_INSIGHT_CHARS,
  MAX_INSIGHTS,
  MAX_MEMORIES,
  MAX_MEMORY_BYTES,
  type ExtractedMemory,
  type Integrator,
  type IntegratorInput,
  type IntegratorOutput,
} from "../integrator-contract.js";

/** The rule that produced a memory; stored as metadata.rule so a reader can weigh or filter by it. */
export type StatementRule = "remember" | "name" | "preference" | "fact";

/** A statement found in one text, before it is attributed to a speaker. */
export interface Statement {
  rule: StatementRule;
  content: string;
}

/** Longest captured X, in characters: enough for a fact, short enough that a rant does not become one. */
export const MAX_CAPTURE_CHARS = 200;
/** How far past a trigger a capture looks for its end: bounds the work per trigger, keeping scans linear. */
const WINDOW = 4 * MAX_CAPTURE_CHARS;

const A = "['’]"; // straight or typographic apostrophe
const TRIGGER = new RegExp(
  [
    String.raw`(?<remember>\b(?:please\s+)?remember\s+that\s+|\bplease\s+remember\s+|\b(?:don${A}?t|do\s+not)\s+forget\s+(?:that\s+)?)`,
    String.raw`(?<name>\bmy\s+name\s+is\s+|\bmy\s+name${A}s\s+|\bcall\s+me\s+|\bi(?:${A}m|\s+am)\s+called\s+)`,
    String.raw`(?<dislike>\bi\s+(?:really\s+)?(?:don${A}?t|do\s+not)\s+(?:really\s+)?like\s+|\bi\s+(?:really\s+)?(?:hate|dislike)\s+)`,
    String.raw`(?<like>\bi\s+(?:really\s+)?(?:prefer|like|love)\s+)`,
    String.raw`(?<favorite>\bmy\s+(?:favou?rite|fave)\s+(?<thing>[\p{L}\p{N}]{1,40}(?:[\s-]+[\p{L}\p{N}]{1,40}){0,2}?)\s+(?:is|are)\s+)`,
    String.raw`(?<isa>\bi(?:${A}m|\s+am)\s+(?<article>an?)\s+)`,
    String.raw`(?<work>\bi\s+work\s+(?<prep>at|for|as)\s+)`,
    String.raw`(?<live>\bi\s+live\s+in\s+)`,
  ].join("|"),
  "giu",
);
/** Where a clause starts again (a negation before it no longer applies). */
const CLAUSE = /[,;:()—–]|\s-\s|\b(?:and|but|or|so|because|although|though|while|whereas|yet|then)\b/giu;
/** Words that make what follows in the clause not an assertion. */
const NEGATION = new RegExp(
  String.raw`\b(?:not|never|no|nor|cannot|dont|doesnt|didnt|cant|wont|isnt|wasnt|if|unless|whether|maybe|perhaps|wonder|wish|hope|suppose|imagine|pretend)\b|n${A}t\b`,
  "giu",
);
/** Where a clause-level capture ends. */
const CAPTURE_END = /[,;:()—–]|\s-\s|\s(?:but|because|although|though|whereas|while|so|since|unless|if|when|except)\b|\s(?:and|or)\s+(?:i|my|you|we|he|she|they)\b/iu;
const QUESTION_START = /^\s*(?:do|does|did|am|is|are|was|were|can|could|should|would|will|shall|may|might|must|have|has|had)\s+(?:i|you|we)\b/iu;
const NEGATED_CAPTURE = /^(?:not|never|no|none)\b/iu;
const VAGUE_ISA = /^(?:bit|little|tad|lot|few|couple)\b/iu;
const NAME_WORD = /[\p{L}\p{M}][\p{L}\p{M}'’-]*/uy;
const GAP = /[ \t]+/y;
const CAPITALIZED = /^\p{Lu}/u;
const SPACE = /\s/;
const SPACES = /\s+/g;
const WORDS = /[^\p{L}]+/u;

const PRONOUNS = new Set(["it", "that", "this", "them", "these", "those", "him", "her", "you", "one", "so", "too"]);
/** Words before "remember" that make it a recollection or a question rather than a request. */
const NOT_IMPERATIVE = new Set(["i", "you", "we", "they", "he", "she", "it", "who", "to", "can", "could", "will", "would", "should", "might", "must", "may", "do", "did", "does", "always", "still"]);
const NAME_STOP = new Set(
  ("and or but so because please i i'm im me not never no at on in by to from for with when if back later tomorrow today " +
    "tonight now soon again anytime maybe a an the whenever then too also instead though here there that this it you what " +
    "whatever anything something just asap ok okay sometime").split(" "),
);

/** Splits on sentence ends; `question` when the sentence's final punctuation holds a "?". */
function sentences(text: string): { text: string; question: boolean }[] {
  const out: { text: string; question: boolean }[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const mark = c === "." || c === "!" || c === "?";
    if (c !== "\n" && !(mark && (i + 1 === text.length || SPACE.test(text[i + 1])))) continue;
    let question = false;
    for (let j = i; mark && j >= start && (text[j] === "." || text[j] === "!" || text[j] === "?"); j--) question ||= text[j] === "?";
    out.push({ text: text.slice(start, i + 1), question });
    start = i + 1;
  }
  if (start < text.length) out.push({ text: text.slice(start), question: false });
  return out;
}

/** Start (or end) offsets of every match of a global regex. */
function offsets(re: RegExp, s: string, ends: boolean): number[] {
  const out: number[] = [];
  re.lastIndex = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) out.push(ends ? m.index + m[0].length : m.index);
  return out;
}

/** Collapses whitespace, cuts to MAX_CAPTURE_CHARS characters, drops trailing punctuation. */
function clean(raw: string): string {
  let x = raw.replace(SPACES, " ").trim();
  if (x.length > MAX_CAPTURE_CHARS) x = Array.from(x).slice(0, MAX_CAPTURE_CHARS).join("");
  let end = x.length;
  while (end > 0 && ".,;:!?… ".includes(x[end - 1])) end--;
  return x.slice(0, end).trim();
}

/** The X of a clause-level rule: from `at` to the clause's end, looking at most WINDOW characters ahead. */
function clauseCapture(s: string, at: number): { x: string; end: number } {
  const window = s.slice(at, at + WINDOW);
  const stop = CAPTURE_END.exec(window);
  const cut = stop ? stop.index : window.length;
  return { x: clean(window.slice(0, cut)), end: at + cut };
}

/** A name: up to 3 words, stopping at function words; after a capitalized word, only capitalized ones. */
function nameCapture(s: string, at: number): { x: string; end: number } {
  const words: string[] = [];
  let pos = at;
  let end = at;
  while (words.length < 3) {
    if (words.length > 0) {
      GAP.lastIndex = pos;
      if (GAP.exec(s)) pos = GAP.lastIndex;
    }
    NAME_WORD.lastIndex = pos;
    const m = NAME_WORD.exec(s);
    if (!m) break;
    const word = m[0];
    if (NAME_STOP.has(word.toLowerCase().replace("’", "'"))) break;
    if (words.length > 0 && CAPITALIZED.test(words[0]) && !CAPITALIZED.test(word)) break;
    words.push(word);
    pos = end = NAME_WORD.lastIndex;
  }
  return { x: clean(words.join(" ")), end };
}

/** Whether the clause text before "remember" leaves it a request ("please", "oh", a name) and not "I ...". */
function imperative(prefix: string): boolean {
  return prefix.length <= 60 && !prefix.split(WORDS).some((w) => NOT_IMPERATIVE.has(w.toLowerCase()));
}

/** Turns one trigger match into a statement, or null when the capture is empty or not an assertion. */
function statementAt(m: RegExpExecArray, s: string, clauseStart: number): { statement: Statement; end: number } | null {
  const g = m.groups ?? {};
  const at = m.index + m[0].length;
  if (g.remember !== undefined) {
    const x = imperative(s.slice(clauseStart, m.index)) ? clean(s.slice(at, at + WINDOW)) : "";
    return x ? { statement: { rule: "remember", content: x }, end: s.length } : null;
  }
  if (g.name !== undefined) {
    const { x, end } = nameCapture(s, at);
    return x ? { statement: { rule: "name", content: `name: ${x}` }, end } : null;
  }
  const { x, end } = clauseCapture(s, at);
  if (!x || NEGATED_CAPTURE.test(x)) return null;
  const found = (rule: StatementRule, content: string) => ({ statement: { rule, content }, end });
  const bare = PRONOUNS.has(x.toLowerCase());
  if (g.dislike !== undefined) return bare ? null : found("preference", `dislikes: ${x}`);
  if (g.like !== undefined) return bare ? null : found("preference", `prefers: ${x}`);
  if (g.favorite !== undefined) return found("preference", `favorite ${g.thing.replace(SPACES, " ").toLowerCase()}: ${x}`);
  if (g.isa !== undefined) return VAGUE_ISA.test(x) ? null : found("fact", `is ${g.article.toLowerCase()} ${x}`);
  if (g.work !== undefined) return found("fact", `works ${g.prep.toLowerCase()} ${x}`);
  return found("fact", `lives in ${x}`);
}

/**
 * The statements in one text, in order, duplicates kept; pure, so the rules can be tested and reused
 * (e.g. to preview what a turn would yield) without a session.
 */
export function extractStatements(text: string): Statement[] {
  const out: Statement[] = [];
  for (const { text: s, question } of sentences(text)) {
    if (question || QUESTION_START.test(s)) continue;
    const clauses = offsets(CLAUSE, s, true);
    const negations = offsets(NEGATION, s, false);
    let ci = 0;
    let ni = 0;
    let clauseStart = 0;
    TRIGGER.lastIndex = 0;
    for (let m = TRIGGER.exec(s); m; m = TRIGGER.exec(s)) {
      while (ci < clauses.length && clauses[ci] <= m.index) clauseStart = clauses[ci++];
      while (ni < negations.length && negations[ni] < clauseStart) ni++;
      if (ni < negations.length && negations[ni] < m.index) continue;
      const found = statementAt(m, s, clauseStart);
      if (!found) continue;
      out.push(found.statement);
      TRIGGER.lastIndex = Math.max(TRIGGER.lastIndex, found.end);
    }
  }
  return out;
}

/** Cuts a string to at most `max` UTF-8 bytes without splitting a character. */
function clipBytes(s: string, max: number): string {
  if (Buffer.byteLength(s, "utf8") <= max) return s;
  let out = "";
  let bytes = 0;
  for (const ch of s) {
    bytes += Buffer.byteLength(ch, "utf8");
    if (bytes > max) break;
    out += ch;
  }
  return out;
}

const SILENT = new Set<ParticipantKind | string>(["tool", "system"]);

/**
 * The default integrator: extractStatements over every other speaker's turns, attributed to the speaker
 * (subjectUser = the session's user only when the speaker is a "user" participant), deduplicated by
 * (subject, content), within MAX_MEMORIES / MAX_INSIGHTS. Throws the signal's reason when aborted.
 */
export const rulesIntegrator: Integrator = {
  async integrate(input: IntegratorInput, signal: AbortSignal): Promise<IntegratorOutput> {
    const speakers = new Map(input.participants.map((p) => [p.participantId, p]));
    const memories: ExtractedMemory[] = [];
    const insights: string[] = [];
    const seenMemories = new Set<string>();
    const seenInsights = new Set<string>();
    for (const turn of input.turns) {
      signal.throwIfAborted();
      if (memories.length >= MAX_MEMORIES) break;
      if (turn.participantId === input.participant.participantId) continue;
      const speaker = speakers.get(turn.participantId);
      if (SILENT.has(speaker?.kind ?? "") || SILENT.has(turn.role)) continue;
      const subjectUser = speaker?.kind === "user" ? input.session.user : "";
      const label = speaker?.displayName || turn.participantId;
      for (const { rule, content: raw } of extractStatements(turn.content)) {
        const content = clipBytes(raw, MAX_MEMORY_BYTES);
        const key = `${turn.participantId}\u0000${content}`;
        if (seenMemories.has(key)) continue;
        seenMemories.add(key);
        memories.push({ content, subjectParticipantId: turn.participantId, subjectUser, metadata: { rule, turn_seq: turn.seq } });
        const insight = Array.from(`${label}: ${content}`).slice(0, MAX_INSIGHT_CHARS).join("");
        if (insights.length < MAX_INSIGHTS && !seenInsights.has(insight)) {
          seenInsights.add(insight);
          insights.push(insight);
        }
        if (memories.length >= MAX_MEMORIES) break;
      }
    }
    return { insights, memories };
  },
  async summarize(input, signal) {
    signal.throwIfAborted();
    return rulesSummary(input);
  },
};
