import { describe, expect, it } from "vitest";
import { createSlots } from "../../src/domain/slots.js";

const later = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};

describe("createSlots", () => {
  it("runs at most `size` at once, the rest in order as slots free up", async () => {
    const run = createSlots(2, 10_000, () => new Error("busy"));
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const gates = Array.from({ length: 5 }, later);
    const runs = gates.map((g, i) =>
      run(async () => {
        running++;
        most = Math.max(most, running);
        order.push(i);
        await g.promise;
        running--;
      }),
    );
    for (const g of gates) {
      await new Promise((r) => setTimeout(r, 5));
      g.resolve();
    }
    await Promise.all(runs);
    expect(most).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });

  it("fails a wait longer than waitMs with busy(), and the slot stays usable", async () => {
    const run = createSlots(1, 30, () => new Error("busy"));
    const hold = later();
    const first = run(() => hold.promise);
    await expect(run(async () => "never")).rejects.toThrow("busy");
    hold.resolve();
    await first;
    expect(await run(async () => "after")).toBe("after");
  });
});
