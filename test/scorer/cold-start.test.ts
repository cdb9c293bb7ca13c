import t from 'tap';

import { MemoryBaselineStore } from '../../scorer/baselines/memory-store.ts';
import { FeatureExtractor } from '../../scorer/features/extractor.ts';
import { namedFeatures } from '../../scorer/features/extract.ts';
import { PatientPseudonymizer } from '../../scorer/features/patient.ts';
import { MONDAY, request } from './helpers.ts';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const GROUPS = ['staff', 'nurses', 'team-w2'];

/** Ten colleagues in the same groups, working 07:00 to 15:00 for two weeks. */
async function warmPeers(extractor: FeatureExtractor): Promise<void> {
  for (let day = 0; day < 14; day += 1) {
    for (let colleague = 0; colleague < 10; colleague += 1) {
      for (let minute = 0; minute < 8 * 60; minute += 10) {
        await extractor.extract(
          request({ user: `nurse-${colleague}@hospital.test`, groups: GROUPS, time: MONDAY + day * DAY + 7 * HOUR + minute * 60_000, ip: '10.22.0.5' }),
        );
      }
    }
  }
}

t.test('new user is scored against the peer group', async (t) => {
  const extractor = new FeatureExtractor({ store: new MemoryBaselineStore(), pseudonymizer: new PatientPseudonymizer(Buffer.alloc(32, 1)) });
  await warmPeers(extractor);

  const newcomer = { user: 'new-nurse@hospital.test', groups: [...GROUPS].reverse(), ip: '10.22.0.9' };
  const inShift = namedFeatures(await extractor.extract(request({ ...newcomer, time: MONDAY + 14 * DAY + 9 * HOUR })));
  const atNight = namedFeatures(await extractor.extract(request({ ...newcomer, time: MONDAY + 14 * DAY + 23 * HOUR })));

  t.equal(inShift.warm_up, Math.fround(1 / 7), 'first active day of seven');
  t.ok(inShift.hour_of_week_rarity < 0, `09:00 is usual for the peers (${inShift.hour_of_week_rarity})`);
  t.ok(atNight.hour_of_week_rarity! > inShift.hour_of_week_rarity! + 3, `23:00 is rare for the peers (${atNight.hour_of_week_rarity})`);
  t.equal(inShift.network_new_for_user, 1, 'the network is new for the user');
  t.equal(inShift.network_new_for_peers, 0, 'but familiar to the peer group');
});

t.test('warm-up reaches one after seven active days', async (t) => {
  const extractor = new FeatureExtractor({ store: new MemoryBaselineStore(), pseudonymizer: new PatientPseudonymizer(Buffer.alloc(32, 1)) });
  const warmUps: number[] = [];

  for (let day = 0; day < 9; day += 1) {
    warmUps.push(namedFeatures(await extractor.extract(request({ time: MONDAY + day * DAY + 9 * HOUR }))).warm_up!);
  }

  t.same(warmUps.map((value) => Math.round(value * 7)), [1, 2, 3, 4, 5, 6, 7, 7, 7]);
});
