// Node BullMQ throughput on the same redis-server as the Rust bench:
// adds with 50 concurrent producers, then one Worker (concurrency 50) with a no-op processor.
// Usage: node bullmq_bench.mjs <port> <n> <priority>   → prints one JSON line.
import { Queue, Worker } from 'bullmq';

const [port, n, priority] = process.argv.slice(2).map(Number);
const connection = { host: '127.0.0.1', port };
const name = `node-bench-${Date.now()}`;
const queue = new Queue(name, { connection, prefix: 'nodebench' });
const producers = 50;
const per = Math.ceil(n / producers);
const opts = priority > 0 ? { priority, attempts: 3 } : { attempts: 3 };

let t0 = performance.now();
await Promise.all(Array.from({ length: producers }, async (_, p) => {
  for (let i = 0; i < per && p * per + i < n; i++) {
    await queue.add('noop', { i: p * per + i }, opts);
  }
}));
const addSecs = (performance.now() - t0) / 1000;

let done = 0;
let resolveDone;
const finished = new Promise((r) => { resolveDone = r; });
t0 = performance.now();
const worker = new Worker(name, async () => {
  done += 1;
  if (done === n) resolveDone();
  return null;
}, { connection, prefix: 'nodebench', concurrency: 50 });
await finished;
const procSecs = (performance.now() - t0) / 1000;
await worker.close();
await queue.obliterate({ force: true });
await queue.close();
console.log(JSON.stringify({ added_per_s: n / addSecs, processed_per_s: n / procSecs }));
