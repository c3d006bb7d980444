// Adaptive draft length: k follows measured pass costs and acceptance (the speculation tests pin k,
// so this is where the choice itself is checked).
import t from 'tap';
import { PassCost } from '../src/scheduler/speculate.ts';

t.test('drafts pay where a verify position is cheap, not where it costs a pass', (t) => {
  const cheap = new PassCost();
  cheap.observe(1, 30); // an ordinary token: 30 ms (a LAN round trip, fp32)
  cheap.observe(5, 34); // a verify step of 4 drafts: 1 ms per extra position
  t.ok(cheap.bestK(0.8, 8) >= 4, `cheap verify, acceptance 0.8: k = ${cheap.bestK(0.8, 8)}`);
  t.ok(cheap.bestK(0.3, 8) >= 1, `cheap verify, acceptance 0.3: still drafts (k = ${cheap.bestK(0.3, 8)})`);

  const dear = new PassCost();
  dear.observe(1, 20);
  dear.observe(5, 70); // int4 exact chunks run position by position: a draft costs most of a pass
  t.equal(dear.bestK(0.3, 8), 0, 'a draft costing most of a pass at acceptance 0.3: none');
  t.ok(dear.bestK(0.98, 8) >= 1, `the same cost at acceptance 0.98 drafts (k = ${dear.bestK(0.98, 8)})`);
  t.end();
});
