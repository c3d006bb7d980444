// The scheduler's slot accounting (src/scheduler/admission.ts), alone: an aborted waiter leaves
// the queue and never takes a slot (issue 8, defect 2); one request's choices hold at most its
// share, and a freed slot goes to the waiting request holding the fewest (defect 4).
import t from 'tap';
import { Admission, perRequestSlots, type Slot } from '../src/scheduler/index.ts';
import { isHearthError } from '../src/errors/index.ts';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

t.test('aborted waiters leave the queue and never take a slot', async (t) => {
  const a = new Admission({ maxConcurrent: 2, maxQueue: 16, maxPerRequest: 2 });
  const held = [await a.acquire('r1'), await a.acquire('r2')];
  const acs = Array.from({ length: 8 }, () => new AbortController());
  const waits = acs.map((ac, i) => a.acquire(`q${i}`, ac.signal).then(() => 'granted', () => 'aborted'));
  t.same(a.load(), { running: 2, waiting: 8 });
  for (const ac of acs) ac.abort(new Error('client went away'));
  t.same(await Promise.all(waits), acs.map(() => 'aborted'), 'every aborted waiter was refused');
  t.same(a.load(), { running: 2, waiting: 0 }, 'and left the queue at once');
  for (const s of held) s.release();
  t.same(a.load(), { running: 0, waiting: 0 }, 'released slots are free, not handed to the aborted');
  const again = await a.acquire('later');
  t.equal(a.load().running, 1, 'a new request gets a slot');
  again.release();
  again.release();
  t.equal(a.load().running, 0, 'a second release() does nothing');
});

t.test('an abort after the grant does not free the slot twice', async (t) => {
  const a = new Admission({ maxConcurrent: 1, maxQueue: 4, maxPerRequest: 1 });
  const first = await a.acquire('a');
  const ac = new AbortController();
  const p = a.acquire('b', ac.signal);
  first.release();
  const slot = await p;
  ac.abort();
  t.same(a.load(), { running: 1, waiting: 0 });
  slot.release();
  t.same(a.load(), { running: 0, waiting: 0 });
});

t.test('fair hand-off: the waiting request that holds the fewest slots goes first', async (t) => {
  const a = new Admission({ maxConcurrent: 4, maxQueue: 64, maxPerRequest: 3 });
  const got: string[] = [];
  const take = (g: string): Promise<Slot> => a.acquire(g).then((s) => { got.push(g); return s; });
  const bigSlots = await Promise.all([take('big'), take('big'), take('big')]);
  const bigMore = [take('big'), take('big')]; // over its share of 3: they wait
  await tick();
  const otherSlot = await take('other');
  t.same(a.load(), { running: 4, waiting: 2 }, 'big holds 3, other 1, big has 2 waiting');
  const otherMore = take('other'); // arrives after big's waiters, holds fewer
  const third = take('third');
  await tick();
  got.length = 0;
  bigSlots[0]!.release();
  await tick();
  t.same(got, ['third'], 'the freed slot went to the request holding none, not to the oldest waiter');
  (await third).release();
  await tick();
  t.same(got, ['third', 'other'], 'then to other (1 held) before big (2 held)');
  otherSlot.release();
  await tick();
  t.same(got, ['third', 'other', 'big'], 'then big, once it holds the fewest');
  bigSlots[1]!.release();
  await tick();
  t.same(got, ['third', 'other', 'big', 'big'], "and big's last choice");
  bigSlots[2]!.release();
  (await otherMore).release();
  for (const p of bigMore) (await p).release();
  t.same(a.load(), { running: 0, waiting: 0 });
});

t.test('a full queue is a 429; the per-request share defaults to half the slots', async (t) => {
  const a = new Admission({ maxConcurrent: 1, maxQueue: 1, maxPerRequest: 1 });
  const s = await a.acquire('a');
  const w = a.acquire('b');
  const err = await a.acquire('c').then(() => null, (e: unknown) => e);
  t.ok(isHearthError(err, 'HEARTH_ERR_QUEUE_FULL'), String(err));
  s.release();
  (await w).release();
  t.same(a.load(), { running: 0, waiting: 0 });
  t.equal(perRequestSlots(16, null), 8);
  t.equal(perRequestSlots(1, null), 1);
  t.equal(perRequestSlots(16, 100), 16);
  t.equal(perRequestSlots(16, 3), 3);
});
