/**
 * A bounded number of concurrent runs (slots), for work that holds a pooled connection: at most `size`
 * run at once, the rest wait in order, and no wait lasts longer than `waitMs` (it then fails with
 * `busy()`). A finished run hands its slot to the next waiter as it is.
 */
export function createSlots(size: number, waitMs: number, busy: () => Error): <T>(work: () => Promise<T>) => Promise<T> {
  let running = 0;
  const queue: (() => void)[] = [];
  return async (work) => {
    if (running >= size) {
      await new Promise<void>((resolve, reject) => {
        const go = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          const i = queue.indexOf(go);
          if (i >= 0) queue.splice(i, 1);
          reject(busy());
        }, waitMs);
        queue.push(go);
      });
    } else running++;
    try {
      return await work();
    } finally {
      const next = queue.shift();
      if (next) next();
      else running--;
    }
  };
}
